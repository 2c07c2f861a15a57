//! The audit log: concurrent admin actions on three nodes extend one hash chain that `plexus
//! audit verify` recomputes on the client; a row altered or removed in Postgres is named;
//! the trust actions of the mesh (invites, claims, key grants, removals, force-releases,
//! drive grants, settings) are recorded with who did them.

use futures_util::future::join_all;
use plexus_e2e::{raw_session, Broker, Mesh, TestDb};
use plexus_proto::{
    ops, signing,
    types::{Role, SessionMode, SessionProfile},
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admin_actions_on_three_nodes_form_one_verifiable_chain() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 3).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    let profile = ana.profile();
    let key = profile.member_key().expect("member key");

    // 300 invites created at once, 100 through each node.
    let mut sessions = Vec::new();
    for node in &nodes {
        sessions.push(
            raw_session(&node.url, &profile, None, SessionMode::Control, None, SessionProfile::default())
                .await
                .expect("connect"),
        );
    }
    let expires =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 3_600_000;
    let calls = (0..300).map(|i| {
        let s = &sessions[i % 3];
        let code = format!("AUDIT{i:04}X");
        let sig = key.sign(&signing::invite_bytes(profile.mesh_id, &code, Role::Member, 1, expires));
        let body = ops::InviteCreate {
            code,
            role: Role::Member,
            max_uses: 1,
            expires_at_ms: expires,
            signature: sig.to_vec(),
            groups: Vec::new(),
        };
        async move { s.conn.call(&body).await }
    });
    for r in join_all(calls).await {
        r.expect("invite_create");
    }
    // And the other audited actions, through the CLI.
    let lock = bo.json(&["lock", "acquire", "docs/**"]);
    ana.json(&["lock", "release", &lock["token"].as_u64().unwrap().to_string(), "--force", "--reason", "release day"]);
    ana.json(&["grant", "drive", "bo"]);
    ana.json(&["guard", "mode", "advisory"]);
    ana.json(&["member", "remove", "bo"]);

    let verified = ana.json(&["audit", "verify"]);
    assert_eq!(verified["ok"], true, "{verified}");
    let list = ana.json(&["audit", "list"]);
    let entries = list["entries"].as_array().unwrap();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("invite.created"), 301, "300 here and bo's invite");
    for action in
        ["invite.claimed", "key.granted", "lock.force_released", "drive.granted", "setting.set", "member.removed"]
    {
        assert_eq!(count(action), 1, "{action}: {list}");
    }
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "one chain, no gaps, no forks");
    let force = entries.iter().find(|e| e["action"] == "lock.force_released").unwrap();
    assert_eq!(force["actor_name"], "ana");
    assert_eq!(force["subject"], "docs/**");
    assert!(force["detail"].as_str().unwrap().contains("release day"));
    // Filters.
    let by_ana = ana.json(&["audit", "list", "--actor", "ana"]);
    let by_ana = by_ana["entries"].as_array().unwrap();
    assert!(!by_ana.is_empty() && by_ana.iter().all(|e| e["actor_name"] == "ana"));
    assert!(by_ana.len() < entries.len(), "bo's claim is not ana's");
    // Only admins read it.
    let carl = plexus_e2e::Peer::new("carl");
    let invite = ana.json(&["invite", "create"]);
    carl.json(&["join", invite["code"].as_str().unwrap(), "--broker", &nodes[1].url, "--name", "carl", "--wait", "0"]);
    assert!(!carl.run(&["audit", "list"]).status.success(), "a member read the audit log");

    // Tampering is found and named.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.execute("UPDATE audit_log SET detail = '{\"role\":\"admin\"}' WHERE seq = 150", &[]).await.unwrap();
    let out = ana.run(&["--json", "audit", "verify"]);
    assert!(!out.status.success(), "an altered entry verified");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["error"].as_str().unwrap().starts_with("entry 150 "), "{report}");

    client.execute("UPDATE audit_log SET detail = '{}' WHERE seq = 150", &[]).await.unwrap();
    client.execute("DELETE FROM audit_log WHERE seq = 77", &[]).await.unwrap();
    let out = ana.run(&["--json", "audit", "verify"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["error"].as_str().unwrap().starts_with("entry 77 is missing"), "{report}");
}

//! Coordination ops against real brokers: state CAS, task workflow and atomic claims across
//! nodes, threads waiting on someone, memory recall and search, events in the mesh log, and
//! bad input that changes nothing.

use std::time::Duration;

use plexus_client::connection::ClientError;
use plexus_e2e::{session_for, Broker, Mesh, TestDb};
use plexus_proto::{
    coord::{self as c, TaskAction, TaskStatus},
    types::SessionMode,
    ErrorCode,
};

const T: Duration = Duration::from_secs(20);

fn code(r: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Remote { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_set_has_one_winner_per_version() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        sessions.push(session_for(&node.url, &mesh.peers[i % 2].profile(), SessionMode::Control).await);
    }
    let create = c::StateSet { key: "leader".into(), value: "none".into(), expect_version: Some(0) };
    assert_eq!(sessions[0].conn.call(&create).await.expect("create").version, 1);

    for round in 1..=3u64 {
        let calls = sessions.iter().enumerate().map(|(i, s)| async move {
            s.conn
                .call(&c::StateSet { key: "leader".into(), value: format!("w{i}"), expect_version: Some(round) })
                .await
        });
        let results = futures_util::future::join_all(calls).await;
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(wins.len(), 1, "round {round}: {results:?}");
        assert_eq!(wins[0].version, round + 1);
        for r in results.into_iter().filter(std::result::Result::is_err) {
            assert_eq!(code(r), ErrorCode::Conflict);
        }
    }
    let got = sessions[3].conn.call(&c::StateGet { key: "leader".into() }).await.unwrap();
    assert_eq!(got.entry.expect("entry").version, 4);
    // A stale compare-and-delete changes nothing.
    let stale = sessions[1].conn.call(&c::StateDelete { key: "leader".into(), expect_version: Some(2) }).await;
    assert_eq!(code(stale), ErrorCode::Conflict);
    assert!(sessions[1].conn.call(&c::StateGet { key: "leader".into() }).await.unwrap().entry.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_claims_from_two_nodes_have_exactly_one_winner() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo", "cy"]).await;
    let owner = session_for(&nodes[0].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let create = c::TaskCreate {
        title: "migrate the billing tables".into(),
        description: String::new(),
        complexity: Some(c::Complexity::Complex),
        files: vec!["db/billing.sql".into()],
        tags: vec!["db".into()],
        depends_on: vec![],
        assignee: None,
    };
    let task = owner.conn.call(&create).await.expect("create");

    let mut claimers = Vec::new();
    for i in 0..50 {
        let node = &nodes[i % 2];
        claimers.push(session_for(&node.url, &mesh.peers[1 + i % 2].profile(), SessionMode::Control).await);
    }
    let claim = c::TaskUpdate { number: task.number, action: TaskAction::Claim, note: None, assignee: None };
    let claims = claimers.iter().map(|s| s.conn.call(&claim));
    let results = futures_util::future::join_all(claims).await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(winners[0].status, TaskStatus::InProgress);
    for r in results.into_iter().filter(std::result::Result::is_err) {
        assert_eq!(code(r), ErrorCode::Conflict);
    }
    let detail = owner.conn.call(&c::TaskGet { number: task.number }).await.unwrap();
    let claims_recorded = detail.history.iter().filter(|s| s.action == "claim").count();
    assert_eq!(claims_recorded, 1, "history: {:?}", detail.history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_review_workflow_and_refused_steps_through_the_cli() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);

    let t1 = ana.json(&["task", "create", "fix the login redirect", "--tags", "auth", "--files", "web/login.rs"]);
    assert_eq!(t1["status"], "todo");
    let t2 = ana.json(&["task", "create", "write the redirect tests", "--depends-on", "1", "--assign", "bo"]);
    assert_eq!(t2["assignee_name"], "bo");

    // Refused steps change nothing and say why.
    let refused = |peer: &plexus_e2e::Peer, args: &[&str], want: &str| {
        let out = peer.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    };
    refused(ana, &["task", "approve", "1"], "task #1 is todo; approve needs it in review");
    refused(bo, &["task", "claim", "2"], "depends on #1 which is not done");
    refused(ana, &["task", "claim", "2"], "assigned to bo");
    refused(bo, &["task", "claim", "99"], "task not found");

    assert_eq!(bo.json(&["task", "claim", "1"])["status"], "in_progress");
    refused(ana, &["task", "claim", "1"], "already claimed by bo");
    refused(ana, &["task", "submit", "1"], "only the assignee");
    assert_eq!(bo.json(&["task", "submit", "1", "--notes", "redirects to the original page"])["status"], "review");
    refused(bo, &["task", "approve", "1"], "only the task's owner or an admin");
    let back = ana.json(&["task", "request-changes", "1", "cover the oauth path too"]);
    assert_eq!(
        (back["status"].as_str(), back["feedback"].as_str()),
        (Some("in_progress"), Some("cover the oauth path too"))
    );
    bo.json(&["task", "submit", "1"]);
    assert_eq!(ana.json(&["task", "approve", "1"])["status"], "done");
    assert_eq!(bo.json(&["task", "claim", "2"])["status"], "in_progress");

    let shown = ana.json(&["task", "show", "1"]);
    let actions: Vec<&str> =
        shown["history"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["created", "claim", "submit", "request_changes", "submit", "approve"]);
    let mine = bo.json(&["task", "list", "--assignee", "me", "--status", "in_progress"]);
    let numbers: Vec<u64> = mine["tasks"].as_array().unwrap().iter().map(|t| t["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_mesh_events_that_replay_from_the_cursor() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    bo.set_brokers(&[&nodes[1].url]);
    // bo follows live on the other node.
    // Exits by itself after the three events, each recorded and acknowledged.
    let mut live = bo.spawn_json(&["inbox", "--follow", "--count", "3"]);
    ana.json(&["state", "set", "deploy/freeze", "on"]);
    ana.json(&["task", "create", "rotate the api keys"]);
    ana.json(&["thread", "open", "release plan", "ship friday?", "--waiting-on", "bo"]);
    for subtype in ["state.set", "task.created", "thread.opened"] {
        assert!(
            live.wait_line(T, |l| l["subtype"] == subtype && l["event"].is_object()).await,
            "{subtype} not pushed: {:?}",
            live.lines()
        );
    }
    let set = live.lines().into_iter().find(|l| l["subtype"] == "state.set").unwrap();
    assert_eq!(set["event"]["entry"]["value"], "on");
    assert_eq!(set["text"], "ana set deploy/freeze (v1)");
    assert!(live.wait_exit(T).await, "the follower did not finish");

    // While bo is away, more changes; his next inbox replays them from his cursor, in order,
    // exactly once.
    ana.json(&["state", "delete", "deploy/freeze"]);
    ana.json(&["remember", "api keys live in the vault under /prod"]);
    let inbox = bo.json(&["inbox"]);
    let subtypes: Vec<&str> =
        inbox["messages"].as_array().unwrap().iter().filter_map(|m| m["subtype"].as_str()).collect();
    assert_eq!(subtypes, ["state.delete", "memory.remembered"], "{inbox}");
    assert_eq!(bo.json(&["inbox"])["messages"].as_array().unwrap().len(), 0);

    // bo sees the thread waiting on him and answers; it then waits on ana.
    let mine = bo.json(&["thread", "list", "--mine"]);
    assert_eq!(mine["threads"][0]["topic"], "release plan");
    bo.json(&["thread", "reply", "1", "friday works"]);
    assert_eq!(bo.json(&["thread", "list", "--mine"])["threads"].as_array().unwrap().len(), 0);
    assert_eq!(ana.json(&["thread", "list", "--mine"])["threads"][0]["posts"], 2);
    ana.json(&["thread", "resolve", "1"]);
    assert_eq!(ana.json(&["thread", "list"])["threads"].as_array().unwrap().len(), 0);
    let out = bo.run(&["thread", "reply", "1", "late"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("thread #1 is resolved"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_ranks_the_relevant_memory_first_and_search_spans_kinds() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana"]).await;
    let ana = &mesh.peers[0];
    ana.json(&["remember", "lunch is at noon on fridays"]);
    ana.json(&["remember", "the staging database password rotates every monday", "--tags", "staging,database"]);
    ana.json(&["remember", "database backups run nightly at 02:00"]);
    ana.json(&["remember", "the ci cache lives under ~/.cache"]);
    ana.json(&["task", "create", "move database backups to the new bucket", "-d", "nightly job"]);
    ana.json(&["thread", "open", "backup retention", "how long do we keep database backups?"]);

    let hits = ana.json(&["recall", "staging database password"]);
    let first = &hits["memories"][0];
    assert_eq!(first["body"], "the staging database password rotates every monday", "{hits}");
    let all: Vec<&str> = hits["memories"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert!(!all.contains(&"lunch is at noon on fridays"), "{all:?}");

    let found = ana.json(&["search", "database backups"]);
    let kinds: Vec<&str> = found["hits"].as_array().unwrap().iter().map(|h| h["kind"].as_str().unwrap()).collect();
    for kind in ["memory", "task", "thread"] {
        assert!(kinds.contains(&kind), "search missed {kind}: {found}");
    }
    // Forgetting is for the author (or an admin) and removes it from recall.
    let n = first["number"].as_u64().unwrap().to_string();
    ana.json(&["forget", &n]);
    let again = ana.json(&["recall", "staging password"]);
    assert_eq!(again["memories"].as_array().unwrap().len(), 0, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_coordination_input_is_refused_and_changes_nothing() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana"]).await;
    let other = Mesh::create(&node, &["zed"]).await;
    let s = session_for(&node.url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let z = session_for(&node.url, &other.peers[0].profile(), SessionMode::Control).await;

    let huge = "x".repeat(c::MAX_STATE_VALUE + 1);
    let r = s.conn.call(&c::StateSet { key: "big".into(), value: huge, expect_version: None }).await;
    assert_eq!(code(r), ErrorCode::InvalidField);
    let r = s.conn.call(&c::StateSet { key: "has space".into(), value: "v".into(), expect_version: None }).await;
    assert_eq!(code(r), ErrorCode::InvalidField);
    let no_feedback = c::TaskUpdate { number: 1, action: TaskAction::RequestChanges, note: None, assignee: None };
    assert_eq!(code(s.conn.call(&no_feedback).await), ErrorCode::InvalidField);
    let r = s.conn.call(&c::Recall { query: "x".into(), limit: 0 }).await;
    assert_eq!(code(r), ErrorCode::InvalidField);

    // SQL-ish strings are data: stored and matched literally, never interpreted.
    let sqlish = "k';DROP_TABLE_tasks;--";
    s.conn.call(&c::StateSet { key: sqlish.into(), value: "' OR 1=1 --".into(), expect_version: None }).await.unwrap();
    s.conn.call(&c::StateSet { key: "k_other".into(), value: "v".into(), expect_version: None }).await.unwrap();
    let listed = s.conn.call(&c::StateList { prefix: "k'".into(), limit: 10 }).await.unwrap();
    assert_eq!(listed.entries.len(), 1);
    assert_eq!(listed.entries[0].value, "' OR 1=1 --");
    // `_` and `%` in a prefix are literal, not LIKE wildcards.
    assert_eq!(s.conn.call(&c::StateList { prefix: "k_".into(), limit: 10 }).await.unwrap().entries.len(), 1);
    assert_eq!(s.conn.call(&c::StateList { prefix: "%".into(), limit: 10 }).await.unwrap().entries.len(), 0);
    let hits = s.conn.call(&c::Search { query: "') OR ('1'='1".into(), limit: 10 }).await.unwrap();
    assert!(hits.hits.is_empty());

    // Another mesh's objects are invisible: not found, not changed.
    let new_task = |title: &str, depends_on: Vec<u64>, assignee| c::TaskCreate {
        title: title.into(),
        description: String::new(),
        complexity: None,
        files: vec![],
        tags: vec![],
        depends_on,
        assignee,
    };
    let task = s.conn.call(&new_task("ours", vec![], None)).await.unwrap();
    let claim = c::TaskUpdate { number: task.number, action: TaskAction::Claim, note: None, assignee: None };
    assert_eq!(code(z.conn.call(&claim).await), ErrorCode::NotFound);
    assert!(z.conn.call(&c::StateGet { key: sqlish.into() }).await.unwrap().entry.is_none());
    let theirs = new_task("depends on theirs", vec![task.number], None);
    assert_eq!(code(z.conn.call(&theirs).await), ErrorCode::NotFound);
    let foreign_assignee = new_task("assigned to their member", vec![], Some(mesh.peers[0].profile().member_id));
    assert_eq!(code(z.conn.call(&foreign_assignee).await), ErrorCode::NotFound);
    let still = s.conn.call(&c::TaskGet { number: task.number }).await.unwrap();
    assert_eq!(still.task.status, TaskStatus::Todo);
}

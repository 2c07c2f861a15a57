//! The scripts people run: `scripts/run.sh` shows the product working and Ctrl-C stops
//! everything it started.

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use plexus_e2e::{free_port, wait_until};

/// `(pid, parent pid, command line)` of every process.
fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push((pid, ppid, cmdline));
    }
    out
}

/// Every process descended from `root`, with its command line.
fn descendants(root: u32) -> Vec<(u32, String)> {
    let all = processes();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, ppid, _)| *ppid == parent).map(|(pid, _, _)| *pid));
        i += 1;
    }
    all.into_iter().filter(|(pid, _, _)| found.contains(pid) && *pid != root).map(|(pid, _, cmd)| (pid, cmd)).collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for every purpose here (it holds no port and runs nothing).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rfind(')').and_then(|i| s[i + 2..].chars().next()) != Some('Z'))
        .unwrap_or(false)
}

/// If the test fails midway, the script's process group still goes.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.0)]).status();
    }
}

/// A terminal's Ctrl-C: SIGINT to the whole foreground process group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sh_shows_the_product_and_ctrl_c_stops_everything_it_started() {
    run_sh_then_interrupt(true).await;
}

/// SIGINT to the script alone (a supervisor, `kill -INT`): the script itself must stop what it
/// started, not count on the signal reaching its children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sh_interrupted_alone_still_stops_everything_it_started() {
    run_sh_then_interrupt(false).await;
}

async fn run_sh_then_interrupt(whole_group: bool) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let demo = std::env::temp_dir().join(format!("plexus-run-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port();
    let mut script = Command::new("bash")
        .arg("scripts/run.sh")
        .current_dir(&repo)
        .env("PLEXUS_PORT", port.to_string())
        .env("PLEXUS_LISTEN_HOST", "127.0.0.1")
        .env("PLEXUS_BUILD_PROFILE", "debug")
        .env("PLEXUS_DEMO_DIR", &demo)
        // Its own process group, like a job in a terminal: Ctrl-C signals the whole group.
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scripts/run.sh");
    let _cleanup = GroupGuard(script.id());
    let output: Arc<Mutex<String>> = Arc::default();
    let streams: [Box<dyn std::io::Read + Send>; 2] =
        [Box::new(script.stdout.take().expect("stdout")), Box::new(script.stderr.take().expect("stderr"))];
    for stream in streams {
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
    }
    let running =
        wait_until(Duration::from_secs(300), || output.lock().unwrap().contains("Plexus is running").then_some(()))
            .await;
    let shown = output.lock().unwrap().clone();
    assert!(running.is_some(), "run.sh never got going:\n{shown}");
    for expected in ["hello from bob", "welcome, bob", "bob holds demo/**"] {
        assert!(shown.contains(expected), "run.sh did not show {expected:?}:\n{shown}");
    }

    let started = descendants(script.id());
    let names: Vec<&str> = started.iter().map(|(_, cmd)| cmd.as_str()).collect();
    assert!(names.iter().any(|c| c.contains("plexus-broker")), "{names:?}");
    assert!(names.iter().any(|c| c.contains("inbox --follow")), "{names:?}");

    let target = if whole_group { format!("-{}", script.id()) } else { script.id().to_string() };
    assert!(Command::new("kill").args(["-INT", "--", &target]).status().expect("kill").success());
    let exited = wait_until(Duration::from_secs(30), || script.try_wait().ok().flatten()).await;
    assert!(exited.is_some(), "run.sh did not stop on Ctrl-C");
    let survivors =
        wait_until(Duration::from_secs(15), || started.iter().all(|(pid, _)| !alive(*pid)).then_some(())).await;
    let left: Vec<&(u32, String)> = started.iter().filter(|(pid, _)| alive(*pid)).collect();
    assert!(survivors.is_some(), "processes run.sh started survived Ctrl-C: {left:?}");
    assert!(output.lock().unwrap().contains("stopped."));
    let _ = std::fs::remove_dir_all(demo);
}

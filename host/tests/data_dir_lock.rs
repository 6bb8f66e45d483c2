//! One Plinth per data dir: a second run on a data dir another Plinth holds
//! is refused before it opens or writes anything, its journal line included.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{PluginDir, init_only, snapshot};

/// A running `plinth`, killed with its process group when dropped, so a
/// failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = i32::try_from(self.0.id()).expect("pid fits i32");
        // SAFETY: signals the process group this test started, nothing else.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn a_refused_second_run_does_not_append_to_the_first_runs_journal() {
    let data = tempfile::tempdir().unwrap();
    let plugins = PluginDir::new();
    // The first run stays in pre-init, inside the data dir's lock, until it
    // is killed: its plugin says so, then spins until a deadline far beyond
    // this test.
    plugins.add(
        "10-spin",
        "scripted",
        "timeout-ms = 60000\nhooks = [\"pre-init\"]\n[settings]\n\"hostile.pre-init\" = \"loop\"\n\"log.message\" = \"spinning\"\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["controller", "--init-only", "--data-dir"])
        .arg(data.path())
        .arg("--plugins")
        .arg(plugins.path())
        .env("PLINTH_LOG", "warn,plinth=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn plinth");
    let stderr = child.stderr.take().expect("piped stderr");
    let first = Running(child);
    let (spinning, spinning_seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("spinning") && line.contains("\"pre-init\"") {
                let _ = spinning.send(());
            }
        }
    });
    spinning_seen
        .recv_timeout(Duration::from_secs(120))
        .expect("the first run's plugin is called in pre-init");

    let journal = data.path().join("journal/bootstrap.jsonl");
    let journal_before = std::fs::read(&journal).expect("the first run's journal");
    assert!(
        !journal_before.is_empty(),
        "the first run journaled its plugin"
    );
    let before = snapshot(data.path());

    let second = init_only(data.path(), None, &[]);
    // Busy has a code of its own: a script can tell "wait and retry" from
    // "fix your input".
    second.expect_code(6);
    let line = second.error_line();
    assert!(
        line.contains("another Plinth process")
            && line.contains(&data.path().display().to_string()),
        "{line}"
    );
    assert_eq!(
        std::fs::read(&journal).unwrap(),
        journal_before,
        "the refused run wrote to the journal"
    );
    assert_eq!(
        snapshot(data.path()),
        before,
        "the refused run changed the data dir"
    );
    drop(first);
}

//! Attacks on the data dir, tried as a hostile local user or a careless
//! operator would (issue 11): every one is refused with exit 2 and one line
//! naming the path and the fix, before a key is written, and nothing lands
//! outside the data dir.

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::{init_only, journal, plinth, snapshot};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A data dir that went through one successful bootstrap.
fn bootstrapped() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), None, &[]).expect_code(0);
    data
}

#[test]
fn a_world_writable_data_dir_is_refused_before_anything_is_written() {
    let data = tempfile::tempdir().unwrap();
    chmod(data.path(), 0o777);
    let run = init_only(data.path(), None, &[]);
    run.expect_code(2);
    let line = run.error_line();
    assert!(
        line.contains(&data.path().display().to_string())
            && line.contains("writable by group or others")
            && line.contains("chmod go-w"),
        "{line}"
    );
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_none(),
        "the refused run wrote into the data dir"
    );
}

#[test]
fn a_planted_stage_link_is_refused_and_nothing_lands_where_it_points() {
    // The attack of the issue: a `.stage` link to a directory the attacker
    // owns, with key files waiting in it to be published as ours.
    let data = tempfile::tempdir().unwrap();
    let attacker = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(attacker.path().join("files/pki")).unwrap();
    std::fs::write(attacker.path().join("files/pki/ca.key"), "attacker's key").unwrap();
    symlink(attacker.path(), data.path().join(".stage")).unwrap();
    let before = snapshot(attacker.path());

    let run = init_only(data.path(), None, &[]);
    run.expect_code(2);
    let line = run.error_line();
    assert!(
        line.contains(".stage") && line.contains("symbolic link"),
        "{line}"
    );
    assert_eq!(
        snapshot(attacker.path()),
        before,
        "the attacker's dir changed"
    );
    assert!(!data.path().join("pki").exists(), "a PKI was made anyway");
}

#[test]
fn pki_and_journal_links_are_refused_and_no_key_or_line_is_written_through_them() {
    for planted in ["pki", "journal"] {
        let data = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        symlink(elsewhere.path(), data.path().join(planted)).unwrap();
        let run = init_only(data.path(), None, &[]);
        run.expect_code(2);
        let line = run.error_line();
        assert!(
            line.contains(&data.path().join(planted).display().to_string())
                && line.contains("symbolic link"),
            "{planted}: {line}"
        );
        assert!(
            std::fs::read_dir(elsewhere.path())
                .unwrap()
                .next()
                .is_none(),
            "{planted}: something was written through the link"
        );
    }

    // A link deeper down, to a file: the journal itself.
    let data = bootstrapped();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("stolen.jsonl");
    std::fs::write(&target, "").unwrap();
    let journal_file = data.path().join("journal/bootstrap.jsonl");
    std::fs::remove_file(&journal_file).unwrap();
    symlink(&target, &journal_file).unwrap();
    init_only(data.path(), None, &[]).expect_code(2);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"",
        "a line went through the link"
    );
}

#[test]
fn a_directory_or_file_others_can_write_inside_the_data_dir_is_refused() {
    let data = bootstrapped();
    chmod(&data.path().join("pki"), 0o777);
    let run = init_only(data.path(), None, &[]);
    run.expect_code(2);
    assert!(
        run.error_line()
            .contains(&data.path().join("pki").display().to_string()),
        "{}",
        run.error_line()
    );
    chmod(&data.path().join("pki"), 0o700);

    chmod(&data.path().join("pki/ca.crt"), 0o666);
    let run = init_only(data.path(), None, &[]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("pki/ca.crt") && run.error_line().contains("chmod go-w"),
        "{}",
        run.error_line()
    );
}

#[test]
fn a_directory_or_file_of_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot give a file to another user; ownership checks not exercised");
        return;
    }
    let data = bootstrapped();
    let nobody = 65534;
    std::os::unix::fs::lchown(data.path().join("pki/ca.key"), Some(nobody), Some(nobody)).unwrap();
    let run = init_only(data.path(), None, &[]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("pki/ca.key") && run.error_line().contains("uid 65534"),
        "{}",
        run.error_line()
    );
    std::os::unix::fs::lchown(data.path().join("pki/ca.key"), Some(0), Some(0)).unwrap();
    std::os::unix::fs::lchown(data.path().join("pki"), Some(nobody), Some(nobody)).unwrap();
    init_only(data.path(), None, &[]).expect_code(2);
}

#[test]
fn keys_kubeconfigs_and_pki_dirs_readable_by_others_are_tightened_and_reported() {
    let data = bootstrapped();
    let (key, kubeconfig, pki) = (
        data.path().join("pki/ca.key"),
        data.path().join("pki/admin.conf"),
        data.path().join("pki"),
    );
    chmod(&key, 0o644);
    chmod(&kubeconfig, 0o640);
    chmod(&pki, 0o755);
    let run = init_only(data.path(), None, &[]);
    run.expect_code(0);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&kubeconfig), 0o600);
    assert_eq!(mode(&pki), 0o700);
    for path in [&key, &kubeconfig, &pki] {
        assert!(
            run.stderr.contains(&path.display().to_string()),
            "{} not reported:\n{}",
            path.display(),
            run.stderr
        );
    }
    let tightened: Vec<_> = journal(data.path())
        .into_iter()
        .filter(|e| e["plugin"] == "builtin:data-dir")
        .map(|e| e["detail"]["tightened"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tightened.len(), 3, "{tightened:?}");
    // A certificate is public: its mode is left alone.
    assert_eq!(mode(&data.path().join("pki/ca.crt")), 0o644);
}

#[test]
fn a_fifo_or_device_inside_the_data_dir_is_refused_not_waited_on() {
    let data = bootstrapped();
    let fifo = data.path().join("pki/server.crt");
    std::fs::remove_file(&fifo).unwrap();
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let run = init_only(data.path(), None, &[]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("server.crt") && run.error_line().contains("FIFO"),
        "{}",
        run.error_line()
    );
}

#[test]
fn a_run_with_nothing_to_stage_commits_nothing_and_restores_the_marker() {
    // A restore that skipped dotfiles: `.complete` is gone, every file is
    // there, so nothing needs staging.
    let data = bootstrapped();
    std::fs::remove_file(data.path().join(".complete")).unwrap();
    let mut before = snapshot(data.path());
    init_only(data.path(), None, &[]).expect_code(0);
    assert!(data.path().join(".complete").is_file());
    assert!(!data.path().join(".stage").exists());
    let mut after = snapshot(data.path());
    after.remove(Path::new(".complete"));
    before.remove(Path::new(".complete"));
    assert_eq!(
        after, before,
        "files changed on a run with nothing to stage"
    );
}

#[test]
fn check_expiration_has_its_own_codes_and_checks_issuers() {
    let missing = tempfile::tempdir().unwrap();
    let absent = missing.path().join("nope");
    let absent = absent.display().to_string();
    let run = plinth(&["pki", "check-expiration", "--data-dir", &absent]);
    run.expect_code(2);
    assert!(run.error_line().contains(&absent), "{}", run.error_line());

    let data = bootstrapped();
    let dir = data.path().display().to_string();
    plinth(&["pki", "check-expiration", "--data-dir", &dir]).expect_code(0);

    // A leaf signed by another CA, in the place of the API server's.
    std::fs::copy(
        data.path().join("pki/front-proxy-client.crt"),
        data.path().join("pki/server.crt"),
    )
    .unwrap();
    let run = plinth(&[
        "pki",
        "check-expiration",
        "--data-dir",
        &dir,
        "--output",
        "json",
    ]);
    run.expect_code(9);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let server = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "pki/server.crt")
        .unwrap();
    assert_eq!(server["status"], "not-signed-by-ca", "{server}");

    std::fs::remove_file(data.path().join("pki/server.crt")).unwrap();
    plinth(&["pki", "check-expiration", "--data-dir", &dir]).expect_code(9);
}

#[test]
fn check_expiration_exits_8_once_a_certificate_has_expired() {
    let data = tempfile::tempdir().unwrap();
    let (_config_dir, config) = common::temp_file(
        "short.yaml",
        "spec:\n  pki:\n    certValidity: 3s\n    renewBefore: 1s\n",
    );
    init_only(
        data.path(),
        None,
        &["--config", &config.display().to_string()],
    )
    .expect_code(0);
    let dir = data.path().display().to_string();
    // The leaves end three seconds after they were issued: poll until the
    // report says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let run = plinth(&["pki", "check-expiration", "--data-dir", &dir]);
        if run.code == 8 {
            assert!(run.stdout.contains("expired"), "{}", run.stdout);
            break;
        }
        run.expect_code(0);
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate expired"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

//! Configs, plugin files, plugin output and token files an attacker or a
//! careless operator controls (issue 11): each is refused with one short
//! line and a documented code, or bounded, and nothing reaches a terminal
//! raw.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{PluginDir, init_only, journal, plinth, temp_file};

fn scripted(hook: &str, settings: &str) -> String {
    format!("hooks = [\"{hook}\"]\n[settings]\n{settings}\n")
}

/// Why the last run stopped, as its journal's last line says.
fn last_failure(data: &Path) -> String {
    let last = journal(data).pop().expect("a journal line");
    last["trap"].as_str().expect("a failure line").to_owned()
}

fn with_config(data: &Path, yaml: &str) -> common::Run {
    let (_dir, config) = temp_file("cluster.yaml", yaml);
    init_only(data, None, &["--config", &config.display().to_string()])
}

/// Run plinth, killing it (and failing) if it has not exited by the
/// deadline: the hangs of the issue (a FIFO as a token) must not hang the
/// suite.
fn plinth_within(args: &[&str], deadline: Duration) -> (i32, String) {
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_plinth"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap(), stderr);
        }
        assert!(started.elapsed() < deadline, "plinth {args:?} hung");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_join_without_a_token_stops_whoever_proposed_it() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-join",
        "scripted",
        &scripted("join-decision", "\"join.action\" = \"join-cluster\""),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(2);
    let line = run.error_line();
    assert!(
        line.contains("join-cluster")
            && line.contains("no join token")
            && line.contains("scripted by"),
        "{line}"
    );
    assert!(
        !data.path().join("pki").exists(),
        "a new CA was made for a join"
    );
}

#[test]
fn a_token_file_of_two_lines_is_refused_and_neither_secret_is_shown_anywhere() {
    let ca = "ab".repeat(32);
    let first = "plinth-join-v1:127.0.0.1:9443:".to_owned() + &ca + ":abc123.firstsecret0123456789";
    let second =
        "plinth-join-v1:127.0.0.2:9443:".to_owned() + &ca + ":def456.secondsecret987654321";
    let (_dir, token) = temp_file("token", &format!("{first}\n{second}\n"));
    let data = tempfile::tempdir().unwrap();
    let run = init_only(
        data.path(),
        None,
        &["--token-file", &token.display().to_string()],
    );
    run.expect_code(2);
    assert!(
        run.error_line().contains("invalid join token"),
        "{}",
        run.error_line()
    );
    let journal_text =
        std::fs::read_to_string(data.path().join("journal/bootstrap.jsonl")).unwrap_or_default();
    for secret in ["firstsecret0123456789", "secondsecret987654321"] {
        assert!(
            !run.stderr.contains(secret),
            "stderr shows a secret: {}",
            run.stderr
        );
        assert!(!run.stdout.contains(secret), "stdout shows a secret");
        assert!(!journal_text.contains(secret), "the journal holds a secret");
    }
    assert!(!data.path().join("pki").exists(), "nothing was made");
}

#[test]
fn a_plugin_flooding_the_log_is_cut_at_its_budget_with_one_journaled_notice() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-chatty",
        "scripted",
        &scripted(
            "pre-init",
            "\"log.message\" = \"flood\"\n\"log.repeat\" = \"20000\"",
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(0);
    let flood_lines = run.stderr.lines().filter(|l| l.contains("flood")).count();
    // 1000 lines a call, for describe, validate-settings and pre-init.
    assert!(
        flood_lines <= 3 * 1000,
        "{flood_lines} flood lines reached the log"
    );
    let notices = run
        .stderr
        .lines()
        .filter(|l| l.contains("exceeded its budget"))
        .count();
    assert_eq!(
        notices,
        3,
        "one notice per call:\n{}",
        &run.stderr[..2000.min(run.stderr.len())]
    );
    let entries = journal(data.path());
    let pre_init = entries
        .iter()
        .find(|e| e["phase"] == "pre-init" && e["plugin"] == "10-chatty")
        .unwrap();
    // Each repeat writes three lines (log, stdout, stderr); stdout and
    // stderr are captured up to 64 KiB each.
    let dropped = pre_init["log_dropped"]["lines"].as_u64().unwrap();
    assert!(dropped >= 20_000 - 1000, "{pre_init}");
    let load = entries
        .iter()
        .find(|e| e["phase"] == "plugins" && e["plugin"] == "10-chatty")
        .unwrap();
    assert!(load["log_dropped"]["lines"].as_u64().unwrap() > 0, "{load}");
}

#[test]
fn an_overflowing_validity_is_a_config_error_naming_the_key_from_the_file_or_a_patch() {
    let data = tempfile::tempdir().unwrap();
    let run = with_config(data.path(), "spec:\n  pki:\n    caValidity: 100000000h\n");
    run.expect_code(2);
    assert!(
        run.error_line().contains("spec.pki.caValidity"),
        "{}",
        run.error_line()
    );

    let plugins = PluginDir::new();
    plugins.add(
        "10-patch",
        "scripted",
        &scripted(
            "pre-init",
            r#""pre-init.patch" = '{"spec":{"pki":{"caValidity":"100000000h"}}}'"#,
        ),
    );
    let run = init_only(data.path(), Some(&plugins), &[]);
    assert_ne!(run.code, 101, "the host panicked:\n{}", run.stderr);
    assert!(
        run.error_line().contains("spec.pki.caValidity"),
        "{}",
        run.error_line()
    );
    let last = last_failure(data.path());
    assert!(last.contains("caValidity"), "{last}");
}

#[test]
fn a_panic_still_ends_in_one_line_exit_1_and_a_journal_entry() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(["controller", "--init-only", "--data-dir"])
        .arg(data.path())
        .env("PLINTH_LOG", "off")
        .env("PLINTH_TEST_PANIC_IN", "pki")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("plinth: error: internal error")
            && stderr.contains("PLINTH_TEST_PANIC_IN=pki"),
        "{stderr}"
    );
    let last = last_failure(data.path());
    assert!(last.contains("panicked"), "{last}");
}

#[test]
fn a_leaf_never_outlives_a_ca_brought_by_the_user() {
    let data = tempfile::tempdir().unwrap();
    let pki = data.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    std::fs::set_permissions(&pki, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "60",
            "-subj",
            "/CN=kubernetes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ])
        .current_dir(&pki)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed for this test");
    assert!(status.success());
    std::fs::set_permissions(
        pki.join("ca.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    init_only(data.path(), None, &[]).expect_code(0);
    let end = |file: &str| {
        let out = Command::new("openssl")
            .args([
                "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", file,
            ])
            .current_dir(&pki)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    // certValidity is a year; the CA ends in 60 days, and the leaf with it.
    assert_eq!(end("server.crt"), end("ca.crt"));
    // A second run keeps it (it is not past its CA), so nothing churns.
    let run = init_only(data.path(), None, &[]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("pki: nothing new or reissued"),
        "{}",
        run.stdout
    );
}

#[test]
fn yaml_that_amplifies_or_nests_is_refused_quickly_with_a_short_line() {
    let data = tempfile::tempdir().unwrap();
    // Billion laughs, aimed at spec.api.sans.
    let mut yaml =
        String::from("x0: &x0 [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\"]\n");
    for level in 1..9 {
        let refs = vec![format!("*x{}", level - 1); 10].join(", ");
        yaml.push_str(&format!("x{level}: &x{level} [{refs}]\n"));
    }
    let run = with_config(data.path(), &yaml);
    run.expect_code(2);
    assert!(run.error_line().contains("aliases"), "{}", run.error_line());

    let nested = format!("spec: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let run = with_config(data.path(), &nested);
    run.expect_code(2);
    assert!(run.error_line().contains("nested"), "{}", run.error_line());

    let large = format!("metadata:\n  name: x\n# {}\n", "x".repeat(2 << 20));
    let run = with_config(data.path(), &large);
    run.expect_code(2);
    assert!(
        run.error_line().contains("larger than"),
        "{}",
        run.error_line()
    );

    // A huge value where a number belongs: refused without being echoed.
    let huge = format!("spec:\n  api:\n    port: \"{}\"\n", "9".repeat(500_000));
    let run = with_config(data.path(), &huge);
    run.expect_code(2);
    assert!(
        run.error_line().len() < 1000,
        "{} bytes",
        run.error_line().len()
    );

    let sans = (0..5_000)
        .map(|n| format!("    - n{n}.example\n"))
        .collect::<String>();
    let run = with_config(data.path(), &format!("spec:\n  api:\n    sans:\n{sans}"));
    run.expect_code(2);
    assert!(
        run.error_line().contains("spec.api.sans") && run.error_line().contains("at most 128"),
        "{}",
        run.error_line()
    );
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_none(),
        "a refused config wrote into the data dir"
    );
}

#[test]
fn every_file_in_the_plugin_directory_is_a_plugin_its_manifest_or_an_error() {
    type Plant = fn(&Path);
    let cases: [(&str, Plant); 7] = [
        ("dangling.wasm", |dir| {
            symlink(dir.join("absent"), dir.join("dangling.wasm")).unwrap()
        }),
        ("device.wasm", |dir| {
            symlink("/dev/zero", dir.join("device.wasm")).unwrap()
        }),
        ("orphan.toml", |dir| {
            std::fs::write(dir.join("orphan.toml"), "order = 1\n").unwrap()
        }),
        ("A.WASM", |dir| {
            std::fs::write(dir.join("A.WASM"), b"\0asm").unwrap()
        }),
        (".hidden.wasm", |dir| {
            std::fs::write(dir.join(".hidden.wasm"), b"\0asm").unwrap()
        }),
        ("notes.txt", |dir| {
            std::fs::write(dir.join("notes.txt"), "").unwrap()
        }),
        ("subdir", |dir| {
            std::fs::create_dir(dir.join("subdir")).unwrap()
        }),
    ];
    for (name, plant) in cases {
        let plugins = PluginDir::new();
        plugins.add("10-audit", "cert-audit", "");
        plant(plugins.path());
        let data = tempfile::tempdir().unwrap();
        let run = init_only(data.path(), Some(&plugins), &[]);
        run.expect_code(2);
        assert!(
            run.error_line().contains(name) && run.error_line().contains("plugin directory"),
            "{name}: {}",
            run.error_line()
        );
        let plan = plinth(&["plugins", "plan", &plugins.arg()]);
        plan.expect_code(2);
    }
}

#[test]
fn control_characters_a_plugin_says_reach_no_terminal_raw() {
    let forged = r#"\u001b[2J\u0007\nplinth: error: forged by the plugin"#;
    let plugins = PluginDir::new();
    plugins.add(
        "10-noisy",
        "scripted",
        &format!(
            "[settings]\n\"log.message\" = \"{forged}\"\n\"post-pki.warn\" = \"{forged}\"\n\"describe.description\" = \"{forged}\"\n"
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(0);
    let inspect = plinth(&[
        "plugins",
        "inspect",
        &plugins.path().join("10-noisy.wasm").display().to_string(),
    ]);
    inspect.expect_code(0);
    for (what, text) in [
        ("stderr", &run.stderr),
        ("stdout", &run.stdout),
        ("inspect", &inspect.stdout),
    ] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{what} has a raw control character"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("plinth: error: forged")),
            "{what} has a forged line:\n{text}"
        );
    }
    assert!(run.stdout.contains("\\u{1b}[2J"), "{}", run.stdout);

    let plugins = PluginDir::new();
    plugins.add(
        "10-deny",
        "scripted",
        &format!("[settings]\n\"post-pki.deny\" = \"ca\"\n\"describe.name\" = \"{forged}\"\n"),
    );
    let run = init_only(tempfile::tempdir().unwrap().path(), Some(&plugins), &[]);
    run.expect_code(3);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
}

#[test]
fn only_regular_files_are_read_as_tokens_and_configs() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().display().to_string();
    let init_with = |flag: &str, file: &str| {
        plinth_within(
            &["controller", "--init-only", "--data-dir", &dir, flag, file],
            Duration::from_secs(60),
        )
    };
    let (code, stderr) = init_with("--token-file", "/dev/zero");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/dev/zero") && stderr.contains("character device"),
        "{stderr}"
    );

    let files = tempfile::tempdir().unwrap();
    let fifo = files.path().join("config.yaml");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    for flag in ["--config", "--token-file"] {
        let (code, stderr) = init_with(flag, &fifo.display().to_string());
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(stderr.contains("FIFO"), "{flag}: {stderr}");
    }

    let large = files.path().join("token");
    std::fs::write(&large, vec![b'a'; 1 << 20]).unwrap();
    let (code, stderr) = init_with("--token-file", &large.display().to_string());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("larger than"), "{stderr}");
}

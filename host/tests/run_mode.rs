//! Run mode with real Plinth and etcd processes on loopback addresses:
//! one controller's life (health with the generated certs, restart as a
//! member, etcd killed and restarted, SIGTERM and SIGKILL leave no etcd),
//! one data dir, one controller (a second is refused while the first runs),
//! parallel joins into one cluster, joiners killed at every step, a joined
//! data dir that must never create a cluster, external etcd, and tokens
//! that must be refused. etcd, etcdctl and openssl must be
//! installed (`cargo xtask test` installs them).
//!
//! Each test has its own address block `127.<block>.0.x`; the heavy ones
//! run one at a time ([`cluster::heavy`]).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::cluster::{self, Controller, ExternalEtcd, wait_for};

const START: Duration = Duration::from_secs(60);

fn voters(members: &[serde_json::Value]) -> usize {
    members.iter().filter(|m| m["learner"] == false).count()
}

#[test]
fn a_controller_serves_etcd_restarts_as_member_survives_etcd_dying_and_stops_clean() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let mut c1 = Controller::new(base.path(), 21, 1, "");
    c1.start(None);
    c1.wait_healthy(START);
    let (member_id, cluster_id, _, _) = c1.endpoint_status().expect("status");
    let members = c1.members();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["name"], "c1");
    assert_eq!(members[0]["peerUrls"][0], "https://127.21.0.1:2380");

    // etcd killed under Plinth is started again, and the journal says so.
    let [etcd] = c1.etcd_pids()[..] else {
        panic!("one etcd expected: {:?}", c1.etcd_pids())
    };
    // etcd writes no more than Plinth's filter shows of it (`etcd=warn`).
    let cmdline = std::fs::read(format!("/proc/{etcd}/cmdline")).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert!(
        args.windows(2)
            .any(|w| w == [b"--log-level".as_slice(), b"warn".as_slice()]),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    // SAFETY: the etcd this test's controller started.
    unsafe { libc::kill(etcd, libc::SIGKILL) };
    wait_for("a new etcd", START, || {
        c1.etcd_pids().first().is_some_and(|pid| *pid != etcd)
    });
    c1.wait_healthy(START);
    let journal = std::fs::read_to_string(c1.data.join("journal/bootstrap.jsonl")).unwrap();
    assert!(journal.contains("\"event\":\"exited\""), "{journal}");

    // SIGTERM: exit 0, no etcd left.
    assert_eq!(c1.stop(), 0, "{}", c1.log_text());
    assert!(c1.etcd_pids().is_empty(), "etcd left behind");
    assert!(c1.log_text().contains("etcd stopped"));

    // Restart: already a member, same member and cluster.
    c1.start(None);
    c1.wait_healthy(START);
    assert_eq!(
        c1.endpoint_status().map(|s| (s.0, s.1)),
        Some((member_id, cluster_id))
    );
    assert!(
        c1.log_text()
            .contains("already-member: etcd/member/wal holds a write-ahead log"),
        "{}",
        c1.log_text()
    );

    // SIGKILL of Plinth takes etcd with it.
    c1.kill();
}

/// Every file of a data dir but etcd's own (etcd writes there while it
/// runs) and the journal (compared on its own).
fn outside_etcd(data: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    common::snapshot(data)
        .into_iter()
        .filter(|(path, _)| !path.starts_with("etcd"))
        .collect()
}

#[test]
fn a_second_controller_on_a_running_controllers_data_dir_is_refused_and_changes_nothing() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let mut c1 = Controller::new(base.path(), 27, 1, "");
    c1.start(None);
    c1.wait_healthy(START);
    wait_for("c1 ready", START, || c1.plinth(&["status"]).code == 0);
    let journal_path = c1.data.join("journal/bootstrap.jsonl");
    let journal = std::fs::read(&journal_path).unwrap();
    let before = outside_etcd(&c1.data);

    // Commands beside a running controller take no lock.
    c1.plinth(&["pki", "check-expiration"]).expect_code(0);
    c1.plinth(&["token", "list"]).expect_code(0);
    assert_eq!(c1.members().len(), 1);

    // A second controller on the same data dir and config: its own log.
    let mut second = Controller::new(base.path(), 27, 2, "");
    second.data = c1.data.clone();
    second.config = c1.config.clone();
    second.start(None);
    assert_eq!(second.wait_exit(START), 6, "{}", second.log_text());
    let log = second.log_text();
    assert!(
        log.contains("another Plinth process is working on the data dir"),
        "{log}"
    );
    assert!(!log.contains("join API serving"), "{log}");
    assert_eq!(
        std::fs::read(&journal_path).unwrap(),
        journal,
        "the refused controller wrote to the journal"
    );
    assert_eq!(
        outside_etcd(&c1.data),
        before,
        "the refused controller changed the data dir"
    );
    assert_eq!(c1.etcd_pids().len(), 1, "one etcd, the first controller's");
    assert!(c1.healthy());
    assert_eq!(c1.stop(), 0, "{}", c1.log_text());
}

#[test]
fn four_controllers_started_at_once_with_one_token_form_one_cluster_of_five() {
    let _heavy = cluster::heavy();
    let rounds: usize = std::env::var("PLINTH_JOIN_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut one_cluster = 0;
    for round in 0..rounds {
        let base = tempfile::tempdir().unwrap();
        let mut nodes: Vec<Controller> = (1..=5)
            .map(|i| Controller::new(base.path(), 22, i, ""))
            .collect();
        nodes[0].start(None);
        nodes[0].wait_healthy(START);
        let token = nodes[0].token_file(&[]);
        for node in &mut nodes[1..] {
            node.start(Some(&token));
        }
        // A round that never gets there is counted, not fatal: the count
        // is the figure (`cargo xtask joins` runs ten).
        let settled = cluster::poll_until(Duration::from_secs(120), || {
            nodes.iter().all(Controller::healthy) && voters(&nodes[0].members()) == 5
        });
        let members = nodes[0].members();
        let ctl = nodes[0].etcdctl(&["member", "list", "-w", "json"]);
        let listed: serde_json::Value = serde_json::from_slice(&ctl.stdout).unwrap();
        let clusters: std::collections::BTreeSet<u64> = nodes
            .iter()
            .map(|n| n.endpoint_status().expect("status").1)
            .collect();
        let ok = settled
            && members.len() == 5
            && voters(&members) == 5
            && listed["members"].as_array().map(Vec::len) == Some(5)
            && clusters.len() == 1;
        if ok {
            one_cluster += 1;
        }
        eprintln!("round {}: one cluster of five voters: {ok}", round + 1);
        for node in &mut nodes {
            assert_eq!(node.stop(), 0, "{}", node.log_text());
        }
        assert!(nodes.iter().all(|n| n.etcd_pids().is_empty()));
    }
    eprintln!("parallel joins: {one_cluster}/{rounds} rounds ended as one cluster of five voters");
    assert_eq!(one_cluster, rounds);
}

/// The leader's controller, among `nodes`.
fn leader_index(nodes: &[Controller]) -> usize {
    let (_, _, leader, _) = nodes[0].endpoint_status().expect("status");
    nodes
        .iter()
        .position(|n| n.endpoint_status().is_some_and(|s| s.0 == leader))
        .expect("a leader among the nodes")
}

#[test]
fn a_joiner_killed_at_any_step_restarts_into_the_same_cluster_without_orphans() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let mut c1 = Controller::new(base.path(), 23, 1, "");
    c1.start(None);
    c1.wait_healthy(START);
    let token = c1.token_file(&[]);

    // 1. Killed before the member add: the join API does not answer (its
    //    Plinth is stopped), so the joiner is stuck fetching the CAs.
    let mut c2 = Controller::new(base.path(), 23, 2, "");
    c1.signal(libc::SIGSTOP);
    c2.start(Some(&token));
    wait_for("c2 fetching the CAs", START, || {
        c2.log_text().contains("fetching the cluster CAs")
    });
    c2.kill();
    c1.signal(libc::SIGCONT);
    assert_eq!(c1.members().len(), 1, "nothing was added");

    // Stopped while asking to be added, after an init-only run with the
    //    token fetched the CAs: SIGTERM is a clean exit, with no etcd, no
    //    membership recorded and none added.
    c2.init_only(Some(&token));
    c1.signal(libc::SIGSTOP);
    c2.start(Some(&token));
    wait_for("c2 asking to be added", START, || {
        c2.log_text()
            .contains("asking to be added as an etcd learner")
    });
    assert_eq!(c2.stop(), 0, "{}", c2.log_text());
    assert!(c2.etcd_pids().is_empty(), "etcd started while joining");
    assert!(!c2.data.join("etcd/join.json").exists());
    c1.signal(libc::SIGCONT);
    assert_eq!(c1.members().len(), 1, "nothing was added");

    c2.start(Some(&token));
    c2.wait_healthy(START);
    wait_for("c2 a voter", START, || voters(&c1.members()) == 2);

    // 2. An etcd that cannot be run is found before the add: nothing is
    //    added (a learner that never starts would block every later join)
    //    and nothing recorded; with the right binary it joins.
    let mut c3 = Controller::new(base.path(), 23, 3, "      binary: /nonexistent/etcd\n");
    c3.start(Some(&token));
    assert_eq!(c3.wait_exit(START), 2, "{}", c3.log_text());
    assert!(
        c3.log_text()
            .contains("cannot run etcd `/nonexistent/etcd`"),
        "{}",
        c3.log_text()
    );
    assert!(!c3.data.join("etcd/join.json").exists());
    assert_eq!(c1.members().len(), 2, "c3 was not added");
    let fixed = std::fs::read_to_string(&c3.config)
        .unwrap()
        .replace("      binary: /nonexistent/etcd\n", "");
    std::fs::write(&c3.config, fixed).unwrap();
    c3.start(Some(&token));
    c3.wait_healthy(START);
    wait_for("c3 a voter", START, || voters(&c1.members()) == 3);

    // 3. After etcd started, before promotion: the leader's Plinth (the
    //    promoter) is stopped and c4 joins through another controller;
    //    c4 is killed as a started learner, and comes back a voter while
    //    the leader's Plinth is still stopped (another controller's
    //    promoter steps in).
    let nodes = [c1, c2, c3];
    let leader = leader_index(&nodes);
    let via = (leader + 1) % 3;
    let token_via = nodes[via].token_file(&[]);
    nodes[leader].signal(libc::SIGSTOP);
    let mut c4 = Controller::new(base.path(), 23, 4, "");
    c4.start(Some(&token_via));
    wait_for("c4 a started learner", START, || {
        nodes[via]
            .members()
            .iter()
            .any(|m| m["name"] == "c4" && m["learner"] == true)
    });
    c4.kill();
    c4.start(Some(&token_via));
    c4.wait_healthy(START);
    assert!(
        c4.log_text().contains("already-member"),
        "{}",
        c4.log_text()
    );
    wait_for("four voters", START, || voters(&nodes[via].members()) == 4);
    nodes[leader].signal(libc::SIGCONT);
    let members = nodes[0].members();
    assert_eq!(members.len(), 4, "no orphan member: {members:?}");
    let clusters: std::collections::BTreeSet<u64> = nodes
        .iter()
        .chain([&c4])
        .map(|n| n.endpoint_status().unwrap().1)
        .collect();
    assert_eq!(clusters.len(), 1);
}

/// An etcd that never reaches its peers: it runs the real etcd with the
/// first member's peer address moved to one nobody listens on, so etcd
/// creates its db, cannot fetch the cluster, and exits before any WAL.
fn etcd_cut_off_from(dir: &std::path::Path, peer: &str) -> std::path::PathBuf {
    let path = dir.join("cut-off-etcd");
    let script = format!(
        "#!/bin/bash\nargs=(\"$@\")\nfor i in \"${{!args[@]}}\"; do\n  args[$i]=\"${{args[$i]//{peer}:2380/{peer}:9}}\"\ndone\nexec etcd \"${{args[@]}}\"\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, PermissionsExt::from_mode(0o755)).unwrap();
    path
}

fn wal_files(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("etcd/member/wal")).map_or(0, |dir| {
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
            .count()
    })
}

#[test]
fn a_joined_data_dir_never_becomes_a_second_cluster_or_reuses_a_member_that_ran() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let mut c1 = Controller::new(base.path(), 31, 1, "");
    c1.start(None);
    c1.wait_healthy(START);
    let token = c1.token_file(&[]);
    let cluster_id = c1.endpoint_status().unwrap().1;

    // 1. Added, but its etcd never reached the cluster: etcd made its db
    //    and no WAL. Restarted, the joiner resumes its recorded membership;
    //    a db alone does not make it a member that may start on its own.
    let cut_off = etcd_cut_off_from(base.path(), &c1.ip);
    let mut c2 = Controller::new(
        base.path(),
        31,
        2,
        &format!("      binary: {}\n", cut_off.display()),
    );
    c2.start(Some(&token));
    wait_for("c2's etcd to give up on its peers", START, || {
        c2.log_text().contains("etcd exited; starting it again")
    });
    c2.kill();
    assert!(c2.data.join("etcd/member/snap/db").exists());
    assert_eq!(wal_files(&c2.data), 0, "etcd wrote a WAL");
    let record = std::fs::read_to_string(c2.data.join("etcd/join.json")).unwrap();
    let member_id = u64::from_str_radix(
        serde_json::from_str::<serde_json::Value>(&record).unwrap()["memberId"]
            .as_str()
            .unwrap(),
        16,
    )
    .unwrap();
    let fixed = std::fs::read_to_string(&c2.config)
        .unwrap()
        .replace(&format!("      binary: {}\n", cut_off.display()), "");
    std::fs::write(&c2.config, fixed).unwrap();
    c2.start(Some(&token));
    c2.wait_healthy(START);
    assert!(
        c2.log_text().contains("resuming the recorded membership"),
        "{}",
        c2.log_text()
    );
    wait_for("c2 a voter", START, || voters(&c1.members()) == 2);
    let (member, cluster, ..) = c2.endpoint_status().unwrap();
    assert_eq!(
        (member, cluster),
        (member_id, cluster_id),
        "the recorded member, in the one cluster"
    );

    // 2. Init-only with the token (the CAs fetched and committed), then run
    //    mode without it: the data dir joined a cluster and creates none.
    let mut c3 = Controller::new(base.path(), 31, 3, "");
    c3.init_only(Some(&token));
    c3.start(None);
    assert_eq!(c3.wait_exit(START), 2, "{}", c3.log_text());
    let log = c3.log_text();
    assert!(
        log.contains(&format!(
            "this data dir joined the cluster at {}:9443",
            c1.ip
        )),
        "{log}"
    );
    assert!(c3.etcd_pids().is_empty() && !c3.data.join("etcd/member").exists());
    assert_eq!(c1.members().len(), 2, "the cluster changed");
    // With its token it joins (a third voter keeps quorum for step 3).
    c3.start(Some(&token));
    c3.wait_healthy(START);
    wait_for("three voters", START, || voters(&c1.members()) == 3);

    // 3. A member that has run is not handed out again to a machine with an
    //    empty data dir under its name and peer URL: it would start empty
    //    under a voter's id.
    assert_eq!(c2.stop(), 0, "{}", c2.log_text());
    std::fs::remove_dir_all(&c2.data).unwrap();
    c2.start(Some(&token));
    assert_eq!(c2.wait_exit(START), 2, "{}", c2.log_text());
    assert!(
        c2.log_text().contains("has already run"),
        "{}",
        c2.log_text()
    );
    assert!(c2.etcd_pids().is_empty());
    let members = c1.members();
    assert_eq!(members.len(), 3, "{members:?}");
    assert_eq!(voters(&members), 3, "{members:?}");
    assert_eq!(c1.stop(), 0, "{}", c1.log_text());
}

#[test]
fn with_external_etcd_no_etcd_is_started_tokens_live_there_and_a_joiner_adds_no_member() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    // The external cluster: etcd on 127.34.0.9 with the certificates of an
    // init-only run, and no Plinth around it.
    let operator = Controller::new(base.path(), 34, 9, "");
    operator.init_only(None);
    let _etcd = ExternalEtcd::start(&operator);
    let pki = operator.data.join("pki");
    let external = |node: &Controller| {
        let yaml = format!(
            "spec:\n  api:\n    address: {ip}\n  storage:\n    type: external\n    etcd:\n      externalCluster:\n        endpoints: [\"{endpoint}\"]\n        caFile: {pki}/etcd/ca.crt\n        certFile: {pki}/apiserver-etcd-client.crt\n        keyFile: {pki}/apiserver-etcd-client.key\n",
            ip = node.ip,
            endpoint = operator.client_url(),
            pki = pki.display(),
        );
        std::fs::write(&node.config, yaml).unwrap();
    };
    let stored_tokens = || {
        let out = operator.etcdctl(&["get", "--prefix", "--keys-only", "/plinth/tokens/"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    };

    let mut c1 = Controller::new(base.path(), 34, 1, "");
    external(&c1);
    c1.start(None);
    wait_for("c1 ready", START, || c1.plinth(&["status"]).code == 0);
    assert!(c1.etcd_pids().is_empty(), "c1 started an etcd");
    assert!(!c1.data.join("etcd").exists());
    let token = c1.token_file(&[]);
    assert_eq!(stored_tokens(), 1, "the token is kept in the external etcd");

    let mut c2 = Controller::new(base.path(), 34, 2, "");
    external(&c2);
    c2.start(Some(&token));
    wait_for("c2 ready", START, || c2.plinth(&["status"]).code == 0);
    assert!(c2.etcd_pids().is_empty(), "c2 started an etcd");
    assert_eq!(
        std::fs::read(c2.data.join("pki/ca.crt")).unwrap(),
        std::fs::read(c1.data.join("pki/ca.crt")).unwrap(),
        "c2 issued its leaves from the cluster CA it fetched"
    );
    let members = operator.etcdctl(&["member", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&members.stdout).lines().count(),
        1,
        "a joiner with external etcd adds no member"
    );
    assert_eq!(c2.stop(), 0, "{}", c2.log_text());
    assert_eq!(c1.stop(), 0, "{}", c1.log_text());
}

#[test]
fn revoked_expired_foreign_and_misaddressed_tokens_are_refused_and_change_nothing() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let mut c1 = Controller::new(base.path(), 24, 1, "");
    c1.start(None);
    c1.wait_healthy(START);
    let before = c1.members();

    let revoked = c1.token_file(&[]);
    let id = std::fs::read_to_string(&revoked).unwrap();
    let id = id
        .rsplit(':')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    c1.plinth(&["token", "revoke", &id]).expect_code(0);
    let listed = c1.plinth(&["token", "list"]);
    assert!(!listed.stdout.contains(&id), "{}", listed.stdout);

    let expired = c1.token_file(&["--ttl", "1s"]);
    wait_for("the token to expire", Duration::from_secs(10), || {
        c1.plinth(&["token", "list"]).stdout.contains("(expired)")
    });

    // A token for this join API pinning another cluster's CA.
    let good = std::fs::read_to_string(c1.token_file(&[])).unwrap();
    let pin = good.split(':').nth(3).unwrap();
    let foreign = base.path().join("foreign-token");
    std::fs::write(&foreign, good.replace(pin, &"ab".repeat(32))).unwrap();

    // A token whose record in etcd is not one: the join API's answer is
    // final (422, not a 5xx the joiner would retry until its timeout), and
    // the joiner shows the server's message.
    let (prefix, credential) = good.trim().rsplit_once(':').unwrap();
    let secret = credential.split_once('.').unwrap().1;
    c1.etcdctl(&["put", "/plinth/tokens/zzz999", "not a token"]);
    let corrupt = base.path().join("corrupt-token");
    std::fs::write(&corrupt, format!("{prefix}:zzz999.{secret}")).unwrap();

    // c1's join API reached through an address its certificate does not
    // name (a port forward): the pinned CA is there, the host name is
    // wrong, and asking again will not change it.
    let _forward = cluster::Forwarder::start("127.24.0.9:9443", "127.24.0.1:9443");
    let misnamed = base.path().join("misnamed-token");
    std::fs::write(
        &misnamed,
        good.replace("127.24.0.1:9443", "127.24.0.9:9443"),
    )
    .unwrap();

    for (token, says) in [
        (&revoked, "refused the join token"),
        (&expired, "refused the join token"),
        (&foreign, "does not present the cluster CA the token pins"),
        (&corrupt, "(422): etcd at"),
        (
            &misnamed,
            "presents a certificate of the pinned CA that is not valid for `127.24.0.9`",
        ),
    ] {
        let mut joiner = Controller::new(base.path(), 24, 2, "");
        joiner.start(Some(token));
        let code = joiner.wait_exit(START);
        let log = joiner.log_text();
        assert_eq!(code, 2, "{log}");
        assert!(log.contains(says), "{log}");
        let secret = std::fs::read_to_string(token).unwrap();
        let secret = secret.rsplit('.').next().unwrap().trim();
        assert!(!log.contains(secret), "a secret was logged");
        assert!(!joiner.data.join("pki").exists(), "nothing published");
        assert_eq!(c1.members(), before, "the cluster changed");
        std::fs::remove_dir_all(joiner.data.parent().unwrap()).unwrap();
    }

    // Revoked between the CA fetch (an init-only run) and the member add:
    // the add is refused too.
    let late = c1.token_file(&[]);
    let late_id = std::fs::read_to_string(&late).unwrap();
    let late_id = late_id
        .rsplit(':')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let mut joiner = Controller::new(base.path(), 24, 2, "");
    joiner.init_only(Some(&late));
    c1.plinth(&["token", "revoke", late_id]).expect_code(0);
    joiner.start(Some(&late));
    assert_eq!(joiner.wait_exit(START), 2, "{}", joiner.log_text());
    assert!(joiner.log_text().contains("refused the join token"));
    assert!(!joiner.data.join("etcd/join.json").exists());
    assert_eq!(c1.members(), before, "the cluster changed");

    let server_log = c1.log_text();
    assert!(
        server_log.contains("unknown or revoked token"),
        "{server_log}"
    );
    assert!(server_log.contains("expired token"), "{server_log}");
}

#[test]
fn the_last_voter_does_not_leave_and_a_second_one_does() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let mut c1 = Controller::new(base.path(), 25, 1, "");
    c1.start(None);
    c1.wait_healthy(START);
    let run = c1.plinth(&["etcd", "leave"]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("last voter"),
        "{}",
        run.error_line()
    );
    let token = c1.token_file(&[]);
    let mut c2 = Controller::new(base.path(), 25, 2, "");
    c2.start(Some(&token));
    c2.wait_healthy(START);
    wait_for("two voters", START, || voters(&c1.members()) == 2);
    let run = c2.plinth(&["etcd", "leave"]);
    run.expect_code(0);
    assert!(run.stdout.contains("member `c2`"), "{}", run.stdout);
    assert_eq!(c1.members().len(), 1);
    let text = c1.plinth(&["etcd", "members"]);
    assert!(
        text.stdout.contains("c1") && !text.stdout.contains("c2"),
        "{}",
        text.stdout
    );
}

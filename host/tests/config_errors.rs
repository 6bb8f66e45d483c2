//! The one line a user sees for each kind of config mistake: which file,
//! where in it (line and column), which key, and what to write instead.
//! Pinned word for word: these lines are the first thing a new user reads.

mod common;

use common::{PluginDir, init_only, temp_file};

/// Run a bootstrap on `yaml` and return the error line, after checking the
/// exit code is 2 and that nothing was written.
fn error_for(yaml: &str) -> (String, String) {
    let (dir, config) = temp_file("cluster.yaml", yaml);
    let data = dir.path().join("data");
    let run = init_only(&data, None, &["--config", &config.display().to_string()]);
    run.expect_code(2);
    assert!(!data.exists(), "a config error created the data dir");
    (config.display().to_string(), run.error_line().to_owned())
}

/// `expected` is the line after `plinth: error: `, with `{file}` standing
/// for the config file's path.
fn assert_line(yaml: &str, expected: &str) {
    let (file, line) = error_for(yaml);
    assert_eq!(
        line,
        format!("plinth: error: {}", expected.replace("{file}", &file)),
        "for\n{yaml}"
    );
}

#[test]
fn a_missing_config_file_is_named_once_with_the_os_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let data = dir.path().join("data");
    let run = init_only(&data, None, &["--config", &missing.display().to_string()]);
    run.expect_code(2);
    assert_eq!(
        run.error_line(),
        format!(
            "plinth: error: cannot read config {}; check the --config path: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn a_yaml_syntax_error_names_its_line_and_column() {
    assert_line(
        "spec:\n  network:\n    serviceCIDR: \"10.96.0.0/12\n",
        "invalid config {file}:4:1: found unexpected end of stream, while scanning a quoted scalar at line 3 column 18",
    );
    assert_line(
        "spec:\n\tnetwork: {}\n",
        "invalid config {file}:2:1: found character that cannot start any token, while scanning for the next token",
    );
}

#[test]
fn an_unknown_key_names_its_line_and_the_keys_allowed_there() {
    assert_line(
        "spec:\n  netwrk: {}\n",
        "invalid config {file}:2:3: spec: unknown field `netwrk`, expected one of `api`, `network`, `storage`, `readiness`, `pki`, `images`, `plugins`",
    );
    assert_line(
        "# site config\nspec: {}\nspek: {}\n",
        "invalid config {file}:3:1: unknown field `spek`, expected one of `apiVersion`, `kind`, `metadata`, `spec`",
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_line_and_the_type_expected() {
    assert_line(
        "spec:\n  api:\n    port: eighty\n",
        "invalid config {file}:3:11: spec.api.port: invalid type: string \"eighty\", expected u16",
    );
    assert_line(
        "just words\n",
        "invalid config {file}:1:1: invalid type: string \"just words\", expected struct ClusterConfig",
    );
}

#[test]
fn a_malformed_value_says_what_is_wrong_and_how_to_write_it() {
    assert_line(
        "spec:\n  network:\n    serviceCIDR: 10.96.0.0/33\n",
        "invalid config {file}:3:5: spec.network: `10.96.0.0/33`: /33 is not a prefix length of an IPv4 address (0-32); write it like `10.96.0.0/12`",
    );
    assert_line(
        "spec:\n  network:\n    podCIDR: 10.244.0.0/32\n",
        "invalid config {file}:3:5: spec.network: `10.244.0.0/32` leaves no room for hosts; use a prefix shorter than /32",
    );
    assert_line(
        "spec:\n  pki:\n    caValidity: 10y\n",
        "invalid config {file}:3:5: spec.pki: `10y` is not a duration; write it like `8760h`, `90m` or `1h30m`",
    );
}

#[test]
fn a_value_refused_by_the_rules_names_its_key_and_line() {
    assert_line(
        "spec:\n  api:\n    port: 0\n",
        "invalid config {file}:3:5: spec.api.port: 0 is not a port; use 1-65535 (6443 by default)",
    );
    assert_line(
        "spec:\n  plugins:\n    requireSignatures: true\n",
        "invalid config {file}:3:5: spec.plugins.requireSignatures: is true but spec.plugins.allowedSigners is not set; name the OpenSSH allowed-signers file to check signatures against",
    );
    // Written in flow style, the key has no line of its own to point at.
    assert_line(
        "spec: {api: {port: 0}}\n",
        "invalid config {file}: spec.api.port: 0 is not a port; use 1-65535 (6443 by default)",
    );
}

#[test]
fn a_plugin_patch_that_breaks_the_config_names_the_plugin_and_the_key() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-patch",
        "scripted",
        "[settings]\n\"pre-init.patch\" = '{\"spec\": {\"api\": {\"port\": 0}}}'\n",
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(4);
    assert_eq!(
        run.error_line(),
        "plinth: error: plugin 10-patch failed in pre-init: gave a malformed answer: its patch makes the config invalid: invalid config the embedded default patched by plugin 10-patch: spec.api.port: 0 is not a port; use 1-65535 (6443 by default)"
    );
}

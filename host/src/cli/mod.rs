//! The command line: clap definitions only. `main.rs` dispatches them to the
//! library; nothing here decides anything.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plugin::contract::Hook;

/// Bootstrap host of a k0s-style Kubernetes distribution, with WebAssembly
/// policy plugins.
///
/// Exit codes: 0 done; 1 internal error (a bug, or the machine refused
/// something); 2 usage, invalid config, manifest, plugin file or settings,
/// an unsafe data dir (owned by another user, writable by others, a link
/// inside), a refused or malformed join token, a join API whose
/// certificate fails verification under the pinned CA, a readiness URL
/// outside the manifest's allow-urls; 3 a plugin denied, or a readiness check failed; 4 a plugin
/// failed (trap, timeout, bad answer) under fail-closed; 5 a required
/// component or peer is unreachable (no join API answered within the join
/// timeout), or a readiness check was not ready within
/// spec.readiness.timeout; 6 another Plinth holds the data dir. `pki
/// check-expiration` adds 8 and 9.
#[derive(Debug, Parser)]
#[command(name = "plinth", version, propagate_version = true)]
pub struct Cli {
    /// Log only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log debug detail, plugins' own debug lines included.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn this machine into a controller.
    Controller(ControllerArgs),
    /// Look at plugins without running a bootstrap.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Certificates of a data dir.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Help for air-gapped sites.
    #[command(subcommand)]
    Airgap(AirgapCommand),
    /// Join tokens of the running cluster (kept in its etcd).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The running cluster's etcd members.
    #[command(subcommand)]
    Etcd(EtcdCommand),
    /// Readiness of the local controller: every check, with why it is not
    /// ready yet (its `/readyz?verbose`). Exits 0 when ready, 5 when not
    /// (or when no controller answers).
    Status {
        #[command(flatten)]
        data_dir: DataDirArg,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Generate the PKI and configuration, run every plugin hook, commit, and
    /// exit; do not start etcd or serve. Without it Plinth goes on in run
    /// mode: it starts and supervises etcd (joining the cluster when given a
    /// token), serves the join API (`/readyz` included), runs every readiness
    /// check (sd_notify READY=1 when all are ready, if NOTIFY_SOCKET is set),
    /// and runs until SIGTERM or SIGINT.
    #[arg(long)]
    pub init_only: bool,
    /// Directory of plugins (`*.wasm`, each with an optional `NAME.toml`).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Where the PKI, configuration, journal and plugin cache live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/plinth")]
    pub data_dir: PathBuf,
    /// ClusterConfig YAML; the embedded default when absent.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Join token of an existing cluster (`plinth token create` prints one):
    /// the CAs are fetched from its join API, and in run mode this
    /// controller becomes an etcd member.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// The data dir of the running controller a client command talks to.
#[derive(Debug, Args)]
pub struct DataDirArg {
    #[arg(long, value_name = "DIR", default_value = "/var/lib/plinth")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a join token and print it (the only time its secret is shown).
    Create {
        /// What the token lets its holder join as.
        #[arg(long, value_enum)]
        role: TokenRole,
        /// How long the token is valid, Go-style (`24h`, `90m`); `0` never expires.
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        ttl: String,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Every token: id, role, created, expires (never a secret).
    List {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Delete a token: joins presenting it are refused from now on.
    Revoke {
        /// The token's id (its first six characters after the CA digest).
        id: String,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    Controller,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Members: name, id, peer URL, voter or learner, started.
    Members {
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Remove this controller's member from the cluster (never the last
    /// voter); then stop the controller and remove its data dir.
    Leave {
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Name, version, hooks, contract, sha256, size and compile time of a plugin.
    Inspect {
        file: PathBuf,
        /// Check FILE.sig against this OpenSSH allowed-signers file.
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Check a plugin's signature (FILE.sig, made with `ssh-keygen -Y sign -n
    /// plinth-plugin`) as a load under requireSignatures would; exit 0 when
    /// it verifies, 2 with the reason when it does not.
    Verify {
        file: PathBuf,
        /// The OpenSSH allowed-signers file naming who may sign plugins.
        #[arg(long, value_name = "FILE")]
        allowed_signers: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// The chain of every hook for a plugin directory, with policies and limits.
    Plan {
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Call one hook of one plugin on a JSON fixture, in the sandbox and
    /// with the limits of a bootstrap; print the answer, the time per call
    /// and the peak memory. Exit 3 when the answer denies, 4 when the
    /// plugin fails.
    Invoke {
        /// The plugin component (`.wasm`); not needed with --example.
        #[arg(required_unless_present = "example")]
        file: Option<PathBuf>,
        /// pre-init, join-decision, post-pki, image-resolve or readiness.
        #[arg(long)]
        hook: Hook,
        /// The hook's input as JSON (`--example` prints one).
        #[arg(long, value_name = "FILE", required_unless_present = "example")]
        input: Option<PathBuf>,
        /// The manifest (limits, settings); NAME.toml beside FILE by default.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Calls to make, each in a fresh instance.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        repeat: u32,
        /// Print a valid fixture for --hook instead of calling anything.
        #[arg(long, conflicts_with_all = ["file", "input", "manifest"])]
        example: bool,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Write a ready-to-build plugin project for one hook: the code, the
    /// contract (wit/), a manifest and a README with the build command.
    New {
        /// The plugin's name: lowercase letters, digits and `-`.
        name: String,
        /// pre-init, join-decision, post-pki, image-resolve or readiness.
        #[arg(long)]
        hook: Hook,
        #[arg(long, value_enum, default_value_t = Language::Rust)]
        lang: Language,
        /// Where to write the project (default: ./NAME); must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Language {
    Rust,
    Python,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// When each certificate, kubeconfig and CA expires, and whether each is
    /// signed by its CA. Exits 0 when all are there, valid, signed by their
    /// CA and unexpired; 8 when one has expired; 9 when one is missing,
    /// unparsable or not signed by its CA (9 wins over 8); 2 when there is
    /// no data dir.
    CheckExpiration {
        #[arg(long, value_name = "DIR", default_value = "/var/lib/plinth")]
        data_dir: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum AirgapCommand {
    /// The images this configuration uses, one reference per line, after the
    /// plugin chain when --plugins is given.
    ListImages {
        /// Every image of the catalog, not only those the config activates.
        #[arg(long)]
        all: bool,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

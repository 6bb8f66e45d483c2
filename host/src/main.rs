//! The `plinth` binary: parse, dispatch, and turn errors into one line and a
//! documented exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use time::OffsetDateTime;

use plinth::cli::{
    AirgapCommand, Cli, Command, ControllerArgs, EtcdCommand, Output, PkiCommand, PluginsCommand,
    TokenCommand, TokenRole,
};
use plinth::controller::{self, InitOptions};
use plinth::images::{self, Catalog, Selection};
use plinth::run::cluster::{self, ClusterAccess};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli.command) {
        Ok(code) => code.into(),
        Err(error) => {
            let code = error
                .downcast_ref::<plinth::Error>()
                .map_or(plinth::ExitCode::Internal, |e| e.exit_code());
            // One line, whatever the causes had in them: scripts grep it.
            let line = format!("{error:#}")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("plinth: error: {line}");
            code.into()
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "warn"
    } else if cli.verbose {
        "debug"
    } else {
        "info"
    };
    // etcd's own lines (target `etcd`) show from warnings up, all with -v.
    let etcd = if cli.verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PLINTH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,plinth={default},etcd={etcd}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(plinth::console::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn run(command: Command) -> anyhow::Result<plinth::ExitCode> {
    match command {
        Command::Controller(args) => controller_command(args),
        Command::Plugins(PluginsCommand::Inspect { file, output }) => {
            print(&plinth::report::inspect(&file)?, output)
        }
        Command::Plugins(PluginsCommand::Plan { dir, output }) => {
            print(&plinth::report::plan(&dir)?, output)
        }
        Command::Pki(PkiCommand::CheckExpiration { data_dir, output }) => {
            let report = plinth::pki::check_expiration(&data_dir, OffsetDateTime::now_utc())
                .map_err(plinth::Error::from)?;
            print(&report, output)?;
            // kubeadm-style: a non-zero exit tells a cron job to act.
            Ok(if report.any_expired() {
                plinth::ExitCode::Internal
            } else {
                plinth::ExitCode::Done
            })
        }
        Command::Airgap(AirgapCommand::ListImages {
            all,
            config,
            plugins,
            output,
        }) => {
            let selection = if all {
                Selection::All
            } else {
                Selection::Active
            };
            let images = controller::list_images(
                &Catalog::builtin(),
                config.as_deref(),
                plugins.as_deref(),
                selection,
            )?;
            match output {
                Output::Text => {
                    let lines: Vec<String> = images.iter().map(images::reference_of).collect();
                    emit(&lines.join("\n"))
                }
                Output::Json => emit(&serde_json::to_string_pretty(&images)?),
            }
        }
        Command::Token(command) => token_command(command),
        Command::Etcd(command) => etcd_command(command),
        Command::Status { data_dir, output } => status_command(&data_dir.data_dir, output),
    }
}

fn status_command(data_dir: &std::path::Path, output: Output) -> anyhow::Result<plinth::ExitCode> {
    let address = plinth::run::cluster::join_api_address(data_dir).map_err(plinth::Error::from)?;
    let report =
        plinth::status::query(&data_dir.join("pki"), address).map_err(plinth::Error::from)?;
    match output {
        Output::Text => emit(&plinth::status::Text(&report).to_string())?,
        Output::Json => emit(&serde_json::to_string_pretty(&report)?)?,
    };
    Ok(if report.ready {
        plinth::ExitCode::Done
    } else {
        plinth::ExitCode::Unreachable
    })
}

fn access(data_dir: &std::path::Path) -> anyhow::Result<ClusterAccess> {
    Ok(ClusterAccess::from_data_dir(data_dir).map_err(plinth::Error::from)?)
}

fn token_command(command: TokenCommand) -> anyhow::Result<plinth::ExitCode> {
    use plinth::run::tokens::Role;
    match command {
        TokenCommand::Create {
            role,
            ttl,
            data_dir,
        } => {
            let ttl = match ttl.as_str() {
                "0" => None,
                text => Some(
                    text.parse::<plinth::config::GoDuration>()
                        .map_err(|message| {
                            plinth::Error::from(plinth::config::ConfigError::Invalid {
                                origin: "the command line".to_owned(),
                                key: "--ttl",
                                message,
                            })
                        })?
                        .as_time(),
                ),
            };
            let role = match role {
                TokenRole::Controller => Role::Controller,
            };
            let (text, stored) = cluster::token_create(&access(&data_dir.data_dir)?, role, ttl)
                .map_err(plinth::Error::from)?;
            tracing::info!(id = %stored.id, role = role.as_str(), "token created");
            emit(&text)
        }
        TokenCommand::List { output, data_dir } => {
            let tokens =
                cluster::token_list(&access(&data_dir.data_dir)?).map_err(plinth::Error::from)?;
            print(&plinth::report::Tokens(tokens), output)
        }
        TokenCommand::Revoke { id, data_dir } => {
            let id: plinth::join::token::TokenId = id.parse().map_err(|message: String| {
                plinth::Error::from(plinth::config::ConfigError::Invalid {
                    origin: "the command line".to_owned(),
                    key: "ID",
                    message,
                })
            })?;
            cluster::token_revoke(&access(&data_dir.data_dir)?, &id)
                .map_err(plinth::Error::from)?;
            emit(&format!("token {id} revoked"))
        }
    }
}

fn etcd_command(command: EtcdCommand) -> anyhow::Result<plinth::ExitCode> {
    match command {
        EtcdCommand::Members { output, data_dir } => {
            let members =
                cluster::members(&access(&data_dir.data_dir)?).map_err(plinth::Error::from)?;
            print(&plinth::report::Members(members), output)
        }
        EtcdCommand::Leave { data_dir } => {
            let member =
                cluster::leave(&access(&data_dir.data_dir)?).map_err(plinth::Error::from)?;
            emit(&format!(
                "member `{}` ({:016x}) removed from the cluster; stop this controller and remove its data dir",
                plinth::run::printable(&member.name),
                member.id
            ))
        }
    }
}

fn controller_command(args: ControllerArgs) -> anyhow::Result<plinth::ExitCode> {
    let options = InitOptions {
        data_dir: args.data_dir,
        plugins_dir: args.plugins,
        config_file: args.config,
        token_file: args.token_file,
        catalog: Catalog::builtin(),
        now: OffsetDateTime::now_utc(),
    };
    let bootstrap = controller::init(&options)
        .with_context(|| format!("data dir {}", options.data_dir.display()))?;
    let done = emit(&plinth::report::Summary(&bootstrap).to_string())?;
    if args.init_only {
        return Ok(done);
    }
    let token = options
        .token_file
        .as_deref()
        .map(plinth::join::JoinToken::read)
        .transpose()
        .map_err(plinth::Error::from)?;
    let plan = plinth::run::RunPlan::new(
        &options.data_dir,
        &bootstrap.config,
        bootstrap.join.action,
        token,
        std::sync::Arc::clone(&bootstrap.loaded),
    )
    .map_err(plinth::Error::from)?;
    let journal = plinth::journal::Journal::open(&options.data_dir).map_err(plinth::Error::from)?;
    let journal = std::sync::Mutex::new(journal);
    let record: plinth::run::Recorder = std::sync::Arc::new(move |entry| {
        let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(error) = journal.record(entry).and_then(|()| journal.sync()) {
            tracing::warn!(%error, "cannot write the journal");
        }
    });
    plinth::run::run_blocking(plan, record)
        .map_err(plinth::Error::from)
        .with_context(|| format!("data dir {}", options.data_dir.display()))?;
    Ok(plinth::ExitCode::Done)
}

fn print<T: std::fmt::Display + serde::Serialize>(
    report: &T,
    output: Output,
) -> anyhow::Result<plinth::ExitCode> {
    match output {
        Output::Text => emit(&report.to_string()),
        Output::Json => emit(&serde_json::to_string_pretty(report)?),
    }
}

/// Write a report to stdout. A reader that went away (`| head`) is not an
/// error of ours.
fn emit(text: &str) -> anyhow::Result<plinth::ExitCode> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(plinth::ExitCode::Done),
    }
}

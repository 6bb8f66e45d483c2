//! The `plinth` binary: parse, dispatch, and turn errors into one line and a
//! documented exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use time::OffsetDateTime;

use plinth::cli::{
    AirgapCommand, Cli, Command, ControllerArgs, EtcdCommand, Language, Output, PkiCommand,
    PluginsCommand, TokenCommand, TokenRole,
};
use plinth::controller::{self, InitOptions};
use plinth::data_dir::DataDirView;
use plinth::images::{self, Catalog, Selection};
use plinth::node::NodeFacts;
use plinth::run::cluster::{self, ClusterAccess};
use plinth::run::tokens::Role;
use plinth::scaffold;
use plinth::{Error, ErrorClass};

/// mimalloc instead of the system allocator: a plugin call moves every
/// string of its input and answer through the host's heap (4000 of them for
/// 1000 images), and glibc's malloc made that a third of the call's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (DESIGN.md, "Exit codes"; `--help` lists them).
const DONE: u8 = 0;
const INTERNAL: u8 = 1;

/// The exit code of a failure of this class.
fn exit_code(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Internal => INTERNAL,
        ErrorClass::Invalid => 2,
        ErrorClass::Denied => 3,
        ErrorClass::PluginFailed => 4,
        ErrorClass::Unreachable => 5,
        ErrorClass::Busy => 6,
    }
}

/// `pki check-expiration`'s own codes (its `--help` lists them): what a
/// cron job acts on.
const CERTIFICATE_EXPIRED: u8 = 8;
const CERTIFICATE_BROKEN: u8 = 9;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    std::panic::set_hook(Box::new(last_resort));
    // A panic is a bug; it still ends in one line and a documented code.
    let outcome = std::panic::catch_unwind(|| run(cli.command));
    match outcome {
        Err(_) => {
            let message = PANIC_MESSAGE
                .lock()
                .ok()
                .and_then(|mut message| message.take())
                .unwrap_or_else(|| "a panic".to_owned());
            eprintln!(
                "plinth: error: internal error (a bug in Plinth, please report it): {message}"
            );
            INTERNAL.into()
        }
        Ok(Ok(code)) => code.into(),
        Ok(Err(error)) => {
            let class = error
                .downcast_ref::<Error>()
                .map_or(ErrorClass::Internal, Error::class);
            // One line, whatever the causes had in them (a plugin's reason
            // included): scripts grep it, and a terminal shows it as text.
            let line = plinth::terminal::one_line(&format!("{error:#}"));
            eprintln!("plinth: error: {line}");
            exit_code(class).into()
        }
    }
}

/// What the last panic said, for the one line `main` prints.
static PANIC_MESSAGE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The panic hook: remember the message for `main`'s one line and append it
/// to the journal, if one is open; print nothing itself (no multi-line
/// report on a terminal, no backtrace a script would have to parse).
fn last_resort(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    let location = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let message = plinth::terminal::escape(&format!("{payload}{location}")).into_owned();
    plinth::journal::record_panic(&message);
    if let Ok(mut last) = PANIC_MESSAGE.try_lock() {
        *last = Some(message);
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

fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Controller(args) => controller_command(args),
        Command::Plugins(PluginsCommand::Inspect {
            file,
            allowed_signers,
            output,
        }) => print(
            &plinth::report::inspect(&file, allowed_signers.as_deref())?,
            output,
        ),
        Command::Plugins(PluginsCommand::Verify {
            file,
            allowed_signers,
            output,
        }) => print(&plinth::report::verify(&file, &allowed_signers)?, output),
        Command::Plugins(PluginsCommand::Plan { dir, output }) => {
            print(&plinth::report::plan(&dir)?, output)
        }
        Command::Plugins(PluginsCommand::Invoke {
            file,
            hook,
            input,
            manifest,
            repeat,
            example,
            output,
        }) => match (example, file, input) {
            (false, Some(file), Some(input)) => {
                let invocation = plinth::invoke::invoke(&plinth::invoke::InvokeOptions {
                    file: &file,
                    hook,
                    input: &input,
                    manifest: manifest.as_deref(),
                    repeat,
                })?;
                print(&invocation, output)?;
                Ok(if invocation.denied() {
                    exit_code(ErrorClass::Denied)
                } else {
                    DONE
                })
            }
            // clap requires FILE and --input unless --example is given.
            _ => emit(&plinth::invoke::example(hook)?),
        },
        Command::Plugins(PluginsCommand::New {
            name,
            hook,
            lang,
            dir,
        }) => {
            let language = match lang {
                Language::Rust => scaffold::Language::Rust,
                Language::Python => scaffold::Language::Python,
            };
            let project = scaffold::new_project(&name, hook, language, dir.as_deref())
                .map_err(Error::from)?;
            emit(&project.to_string())
        }
        Command::Pki(PkiCommand::CheckExpiration { data_dir, output }) => {
            // Reads only: it may run beside a controller holding the lock.
            let data_dir = DataDirView::new(data_dir);
            let report = plinth::pki::check_expiration(&data_dir, OffsetDateTime::now_utc())
                .map_err(Error::from)?;
            print(&report, output)?;
            // A non-zero exit tells a cron job to act; a broken set is worse
            // than an expired one.
            Ok(if report.any_missing_or_invalid() {
                CERTIFICATE_BROKEN
            } else if report.any_expired() {
                CERTIFICATE_EXPIRED
            } else {
                DONE
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
                &NodeFacts::discover(),
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
        Command::Status { data_dir, output } => {
            // A client beside the controller: no lock.
            let report =
                plinth::status::query(&DataDirView::new(data_dir.data_dir)).map_err(Error::from)?;
            match output {
                Output::Text => emit(&plinth::status::Text(&report).to_string())?,
                Output::Json => emit(&serde_json::to_string_pretty(&report)?)?,
            };
            Ok(if report.ready {
                DONE
            } else {
                exit_code(ErrorClass::Unreachable)
            })
        }
    }
}

/// How the client commands reach the cluster of the controller on a data
/// dir: through its persisted config, without its lock.
fn access(data_dir: std::path::PathBuf) -> anyhow::Result<ClusterAccess> {
    Ok(ClusterAccess::from_data_dir(&DataDirView::new(data_dir)).map_err(Error::from)?)
}

fn token_command(command: TokenCommand) -> anyhow::Result<u8> {
    match command {
        TokenCommand::Create {
            role,
            ttl,
            data_dir,
        } => {
            let ttl = cluster::parse_ttl(&ttl).map_err(Error::from)?;
            let role = match role {
                TokenRole::Controller => Role::Controller,
            };
            let (text, stored) = cluster::token_create(&access(data_dir.data_dir)?, role, ttl)
                .map_err(Error::from)?;
            tracing::info!(id = %stored.id, role = role.as_str(), "token created");
            emit(&text)
        }
        TokenCommand::List { output, data_dir } => {
            let tokens = cluster::token_list(&access(data_dir.data_dir)?).map_err(Error::from)?;
            print(&plinth::report::Tokens(tokens), output)
        }
        TokenCommand::Revoke { id, data_dir } => {
            let id = cluster::parse_token_id(&id).map_err(Error::from)?;
            cluster::token_revoke(&access(data_dir.data_dir)?, &id).map_err(Error::from)?;
            emit(&format!("token {id} revoked"))
        }
    }
}

fn etcd_command(command: EtcdCommand) -> anyhow::Result<u8> {
    match command {
        EtcdCommand::Members { output, data_dir } => {
            let members = cluster::members(&access(data_dir.data_dir)?).map_err(Error::from)?;
            print(&plinth::report::Members(members), output)
        }
        EtcdCommand::Leave { data_dir } => {
            let member = cluster::leave(&access(data_dir.data_dir)?).map_err(Error::from)?;
            emit(&plinth::report::Left(&member).to_string())
        }
    }
}

fn controller_command(args: ControllerArgs) -> anyhow::Result<u8> {
    let options = InitOptions {
        data_dir: args.data_dir,
        plugins_dir: args.plugins,
        config_file: args.config,
        token_file: args.token_file,
        catalog: Catalog::builtin(),
        node: NodeFacts::discover(),
        now: OffsetDateTime::now_utc(),
    };
    let bootstrap = controller::init(&options).map_err(|error| {
        // Errors inside the data dir name paths relative to it; the rest
        // (config, plugins, a denial) have nothing to do with it.
        if error.is_inside_data_dir() {
            anyhow::Error::new(error).context(format!("data dir {}", options.data_dir.display()))
        } else {
            error.into()
        }
    })?;
    let done = emit(&plinth::report::Summary(&bootstrap).to_string())?;
    if args.init_only {
        return Ok(done);
    }
    // Run mode keeps the bootstrap, and with it the data dir's lock, until
    // it returns. Its errors name absolute paths and peers.
    plinth::run::run_blocking(bootstrap).map_err(Error::from)?;
    Ok(DONE)
}

fn print<T: std::fmt::Display + serde::Serialize>(
    report: &T,
    output: Output,
) -> anyhow::Result<u8> {
    match output {
        Output::Text => emit(&report.to_string()),
        Output::Json => emit(&serde_json::to_string_pretty(report)?),
    }
}

/// Write a report to stdout. A reader that went away (`| head`) is not an
/// error of ours.
fn emit(text: &str) -> anyhow::Result<u8> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(DONE),
    }
}

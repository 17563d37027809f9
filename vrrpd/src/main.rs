//! `vrrpd`: VRRP, health checks and IPVS from one TOML file, a
//! keepalived replacement.

mod config;
mod import;
mod manual;
mod plan;
mod run;

use run::lock::EXIT_RUNNING;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit status for a configuration that is wrong (keepalived uses 1 for
/// everything; systemd units can tell a bad file from a crash with 2).
const EXIT_CONFIG: u8 = 2;

/// `vrrpd --version`: the version and the commit it was built from
/// (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VRRPD_GIT_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "vrrpd",
    version = VERSION,
    about = "VRRP, health checks and IPVS from one TOML file"
)]
struct Cli {
    /// Log format on standard error: text (default: the configuration's
    /// `global.log_format`, else text) or json.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a configuration and print it with every default filled in.
    Check {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Convert a keepalived.conf into vrrpd's TOML. Warnings (what is not
    /// carried as written) and errors name the keepalived.conf file and
    /// line; scripts and users missing on this host are warnings, since
    /// the file is meant for the host it came from (`vrrpd check` there
    /// still refuses them). Exit status 2 when the file cannot be carried.
    ImportKeepalived {
        /// The keepalived configuration file.
        file: PathBuf,
        /// Where to write the TOML (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print, per keyword, how often it was carried, carried with a
        /// changed meaning, or dropped (on standard error).
        #[arg(long)]
        report: bool,
        /// keepalived's `-i`: the configuration id that `@id` lines are
        /// compared with (default: this host's name up to its first dot).
        #[arg(long)]
        config_id: Option<String>,
    },
    /// Run the daemon in the foreground. One daemon per name: a second
    /// copy exits with status 3, touching nothing.
    Run {
        /// The configuration file.
        #[arg(short, long)]
        config: PathBuf,
        /// The daemon's name (keepalived's `--instance`): its pid file is
        /// /run/vrrpd/NAME.pid, its record of added addresses
        /// /run/vrrpd/NAME.addresses. Daemons with disjoint instances run
        /// side by side under different names. Default: vrrpd (outside
        /// the host's network namespace, vrrpd@INODE of the namespace).
        #[arg(long, value_parser = parse_name)]
        name: Option<String>,
        /// The pid file (keepalived's `-p`), locked while the daemon runs;
        /// overrides the one --name implies.
        #[arg(short, long)]
        pid_file: Option<PathBuf>,
    },
    /// Show an election, a failover and a recovery without any setup: real
    /// daemons in network namespaces as root, the simulator otherwise.
    Demo {
        /// Use the simulator even as root.
        #[arg(long)]
        simulate: bool,
    },
    /// Print the status of a running daemon: instances (state, base and
    /// effective priority, master, maintenance), virtual addresses as the
    /// kernel has them, tracked scripts, real servers.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Read it from this HTTP listener (`global.http`) instead of the
        /// control socket.
        #[arg(short, long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Follow a running daemon's event stream: one JSON object a line
    /// (state changes with their reason, sync groups, tracked objects,
    /// real servers, quorums, checks, reloads with their diff,
    /// maintenance, address repairs) until it stops or you do.
    Events {
        #[command(flatten)]
        target: Target,
    },
    /// Commands to a running daemon.
    Ctl {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        action: Ctl,
    },
    /// What a reload (SIGHUP) to FILE would change in a running daemon;
    /// nothing is applied.
    Diff {
        /// The new configuration file (also as `-c FILE`).
        #[arg(value_name = "FILE", required_unless_present = "config")]
        file: Option<PathBuf>,
        /// The new configuration file.
        #[arg(short, long, value_name = "FILE", conflicts_with = "file")]
        config: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
    /// Replay a flight recording (`vrrpd ctl dump`) through the VRRP
    /// engine in simulated time: prints the transitions it makes, and
    /// exits 0 when they are those recorded, 1 otherwise.
    Replay {
        /// The recording (JSON lines).
        file: PathBuf,
    },
    /// Print the MD5 digest of a URL's body, as keepalived's genhash does,
    /// for an `http_get`/`ssl_get` check's `digest`.
    Genhash {
        /// http:// or https:// URL.
        url: String,
        /// Connect to this address instead of the URL's host.
        #[arg(long)]
        server: Option<std::net::SocketAddr>,
    },
    /// Write the manual pages and shell completions under a directory
    /// (packaging/build-deb.sh; see src/manual).
    #[command(hide = true)]
    GenerateAssets {
        /// The directory.
        dir: PathBuf,
    },
}

/// Which running daemon a client verb talks to.
#[derive(clap::Args)]
struct Target {
    /// The daemon's name (as given to `vrrpd run --name`); its control
    /// socket is /run/vrrpd/NAME.sock.
    #[arg(long, value_parser = parse_name)]
    name: Option<String>,
    /// The control socket itself.
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl Target {
    fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| run::lock::Identity::new(self.name.as_deref(), None).socket)
    }
}

#[derive(Subcommand)]
enum Ctl {
    /// Print the flight recorder as JSON lines: every input the VRRP
    /// engine got (advertisements with their arrival time, timer firings,
    /// tracked objects and links, commands, configuration) and every
    /// transition, the last ones kept in memory; `vrrpd replay` reads it.
    Dump,
    /// Put an instance or a sync group in maintenance (a master leaves
    /// gracefully, with a priority-0 advertisement, and it stays Backup,
    /// reloads included) or take it out.
    Maintenance {
        /// Instance or sync group name.
        name: String,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Reload the configuration file, as SIGHUP does, and print the
    /// result: what changed, or why it was refused (the running
    /// configuration stays; exit status 1).
    Reload {
        /// Print what the reload would change; apply nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VRRPD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format.clone();
    match cli.command {
        Cmd::Check { config } => check(&config),
        Cmd::ImportKeepalived {
            file,
            output,
            report,
            config_id,
        } => import_keepalived(&file, output.as_deref(), report, config_id),
        Cmd::Run {
            config: path,
            name,
            pid_file,
        } => match config::load(&path) {
            Ok(config) => {
                let configured = match config.global.log_format {
                    config::LogFormat::Json => "json",
                    _ => "text",
                };
                init_logging(format.as_deref().unwrap_or(configured));
                let identity = run::lock::Identity::new(name.as_deref(), pid_file.as_deref());
                match run::run(&path, plan::plan(&config), load_plan, identity) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e @ run::RunError::AlreadyRunning(_)) => {
                        tracing::error!(error = %e, "not started");
                        eprintln!("vrrpd: {e}");
                        ExitCode::from(EXIT_RUNNING)
                    }
                    Err(e) => {
                        eprintln!("vrrpd: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(errors) => config_errors(&errors),
        },
        Cmd::Demo { simulate } => {
            init_logging(format.as_deref().unwrap_or("text"));
            report(run::demo::demo(simulate))
        }
        Cmd::Status {
            target,
            json,
            listen,
        } => report(status(&target, json, listen)),
        Cmd::Events { target } => report(events(&target)),
        Cmd::Ctl { target, action } => report(ctl(&target, action)),
        Cmd::Diff {
            file,
            config,
            target,
        } => match file.or(config) {
            Some(path) => report(diff(&target, &path)),
            None => report(Err(anyhow::anyhow!("diff: no configuration file given"))),
        },
        Cmd::Replay { file } => match replay(&file) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("vrrpd: {e:#}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Cmd::Genhash { url, server } => report(genhash(&url, server)),
        Cmd::GenerateAssets { dir } => report(
            manual::write_assets(Cli::command(), &dir)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("cannot write under {}: {e}", dir.display())),
        ),
    }
}

/// The configuration file read, resolved and planned again (SIGHUP).
fn load_plan(path: &std::path::Path) -> anyhow::Result<run::plan::Plan> {
    let config = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(plan::plan(&config))
}

/// A daemon name is a file name: no `/`, not empty, not `.` or `..`.
fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
        return Err(format!("`{s}` cannot name a file under /run/vrrpd"));
    }
    Ok(s.to_owned())
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn status(target: &Target, json: bool, listen: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    let doc = match listen {
        Some(addr) => rt.block_on(run::http::fetch_status(addr))?,
        None => {
            let mut v =
                rt.block_on(run::api::call(&target.socket(), &run::api::Command::Status))?;
            if let Some(o) = v.as_object_mut() {
                o.remove("ok");
            }
            serde_json::from_value(v)?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        run::http::print_table(&doc);
    }
    Ok(())
}

fn events(target: &Target) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    rt.block_on(run::api::follow(&target.socket(), |line| {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`vrrpd events | head`) ends the follow.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    }))
}

fn ctl(target: &Target, action: Ctl) -> anyhow::Result<()> {
    let rt = client_runtime()?;
    match action {
        Ctl::Dump => {
            let v = rt.block_on(run::api::call(&target.socket(), &run::api::Command::Dump))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in v["flight_record"].as_array().into_iter().flatten() {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
        Ctl::Maintenance { name, state } => {
            let on = state == "on";
            let v = rt.block_on(run::api::call(
                &target.socket(),
                &run::api::Command::Maintenance { name, on },
            ))?;
            let instances: Vec<&str> = v["instances"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i.as_str()).collect())
                .unwrap_or_default();
            println!(
                "maintenance {} for {}",
                if on { "on" } else { "off" },
                instances.join(", ")
            );
        }
        Ctl::Reload { dry_run } => {
            let v = rt.block_on(run::api::call(
                &target.socket(),
                &run::api::Command::Reload { dry_run },
            ))?;
            println!(
                "{}",
                if dry_run {
                    "dry run: nothing applied"
                } else {
                    "reload applied"
                }
            );
            print_diff(&v);
        }
    }
    Ok(())
}

/// The lines of a diff reply (`diff`, `ctl reload`), or `no change`.
fn print_diff(v: &serde_json::Value) {
    let lines: Vec<&str> = v["text"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    if lines.is_empty() {
        println!("no change");
    }
    for l in lines {
        println!("{l}");
    }
}

/// Replays a recording; whether it reproduced the recorded transitions.
fn replay(file: &std::path::Path) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let record =
        run::record::from_text(&text).map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?;
    let replay = vrrp_net::driver::core::record::replay(&record.records);
    let (lines, same) = run::record::report(&record, &replay);
    for l in lines {
        println!("{l}");
    }
    Ok(same)
}

fn diff(target: &Target, config: &std::path::Path) -> anyhow::Result<()> {
    // The daemon reads the file: make the path mean what it means here.
    let config = std::path::absolute(config)?;
    let rt = client_runtime()?;
    let v = rt.block_on(run::api::call(
        &target.socket(),
        &run::api::Command::Diff { config },
    ))?;
    print_diff(&v);
    Ok(())
}

fn genhash(url: &str, server: Option<std::net::SocketAddr>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut request = healthcheck::GenhashRequest::new(url);
    request.connect_to = server;
    let report = rt.block_on(healthcheck::genhash(&request))?;
    println!("MD5SUM = {}", report.digest);
    println!(
        "({} bytes from {}, HTTP status {})",
        report.body_len, report.target, report.status
    );
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrrpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn config_errors(errors: &config::ConfigErrors) -> ExitCode {
    for e in &errors.0 {
        eprintln!("error: {e}");
    }
    eprintln!("{} error(s); nothing started", errors.0.len());
    ExitCode::from(EXIT_CONFIG)
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = writeln!(out, "# effective configuration of {}", path.display())
                .and_then(|()| config.write_toml(&mut out))
                .and_then(|()| out.flush());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vrrpd: cannot write the configuration: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(errors) => config_errors(&errors),
    }
}

fn import_keepalived(
    file: &std::path::Path,
    output: Option<&std::path::Path>,
    report: bool,
    config_id: Option<String>,
) -> ExitCode {
    let mut options = import::Options::default();
    if let Some(id) = config_id {
        options.config_id = id;
    }
    let mut imported = match import::import_file(file, &options) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("the keepalived configuration cannot be carried; nothing written");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let name = output.map_or_else(|| PathBuf::from("<stdout>"), PathBuf::from);
    let written = match output {
        Some(path) => std::fs::File::create(path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            imported.write_toml(&mut w)?;
            w.flush()
        }),
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            imported.write_toml(&mut w).and_then(|()| w.flush())
        }
    };
    if let Err(e) = written {
        eprintln!("error: cannot write {}: {e}", name.display());
        return ExitCode::FAILURE;
    }
    // The converted configuration, checked as `vrrpd check` would on the
    // host it is for: problems placed at the keepalived.conf lines.
    let raw = std::mem::take(&mut imported.config);
    let outcome = config::resolve(
        raw,
        config::Target::OtherHost,
        &config::Failed::default(),
        false,
    );
    let place = |p: &config::Problem| {
        let (file, line) = imported.locate(&p.key);
        config::ConfigError {
            file,
            line,
            column: 0,
            key: p.key.clone(),
            kind: p.kind.clone(),
        }
    };
    let mut warnings: Vec<String> = imported.warnings.iter().map(ToString::to_string).collect();
    warnings.extend(outcome.warnings.iter().map(|p| {
        format!(
            "{} (on this host; `vrrpd check` on the target host refuses it if it is so there)",
            place(p)
        )
    }));
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if report {
        eprint!("{}", imported.report.table());
    }
    if outcome.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        let errors: Vec<config::ConfigError> = outcome.errors.iter().map(place).collect();
        eprintln!("the converted configuration does not pass `vrrpd check`:");
        config_errors(&config::ConfigErrors(errors))
    }
}

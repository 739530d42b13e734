//! The `rswitch` command line: serve, migrate, configuration, extensions, administrators.
//!
//! Exit status: 0 success, 1 runtime failure (database unreachable, port in use, …),
//! 2 bad configuration or bad arguments (the message names the key or argument).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use rswitch::config::{Config, LogFormat};
use rswitch::secret::{Secret, random_password};
use rswitch::server::{self, ServeError};
use rswitch::store::{Extension, ExtensionGroup, ListQuery, seed};

/// mimalloc: per-thread heaps suit the SIP task, the media threads and the database tasks
/// allocating side by side (see benches/RESULTS.md, calls per second).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rswitch",
    version,
    about = "A standalone SIP PBX / B2BUA with its own media engine"
)]
struct Cli {
    /// Configuration file (TOML); see `rswitch config defaults` for every key.
    #[arg(long, short, global = true, env = "RSWITCH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the PBX.
    Serve,
    /// Apply the database migrations (and first-start seeding), then exit.
    Migrate,
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage extensions.
    #[command(subcommand)]
    Extensions(ExtensionsCommand),
    /// Manage administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// List the audio codecs and what rswitch can do with each (transcode or relay).
    Codecs,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the default configuration file, with a comment on every key.
    Defaults,
    /// Check the configuration (file + environment) and print the effective values.
    Check,
}

#[derive(Subcommand)]
enum ExtensionsCommand {
    /// Create the extensions FROM..=TO that do not exist yet, each with a random password.
    Create {
        #[arg(long)]
        from: u32,
        #[arg(long)]
        to: u32,
        /// Group name (created if missing).
        #[arg(long)]
        group: Option<String>,
    },
    /// List extensions: number,name,group,password.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Csv,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Set a new password for an administrator (created if missing) and print it.
    ResetPassword {
        #[arg(long, default_value = seed::ADMIN_USERNAME)]
        username: String,
        /// The new password; without it a random one is generated and printed.
        #[arg(long, env = "RSWITCH_NEW_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(ConfigCommand::Defaults) = cli.command {
        print!("{}", rswitch::config::DEFAULTS_TOML);
        return ExitCode::SUCCESS;
    }
    if let Command::Codecs = cli.command {
        print_codecs();
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rswitch: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rswitch: can not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "rswitch stopped");
            eprintln!("rswitch: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_codecs() {
    use rswitch_codecs::registry::{Capability, codecs};
    println!(
        "{:<6} {:>12} {:>3} {:<9} note",
        "codec", "rate", "pt", "can"
    );
    for codec in codecs() {
        let rate = match codec.channels {
            Some(n) => format!("{}/{n}", codec.clock_rate),
            None => codec.clock_rate.to_string(),
        };
        let can = match codec.capability {
            Capability::Transcode => "transcode",
            Capability::Relay => "relay",
        };
        println!(
            "{:<6} {:>12} {:>3} {:<9} {}",
            codec.name, rate, codec.payload_type, can, codec.note
        );
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, config: Config) -> Result<ExitCode, ServeError> {
    match command {
        Command::Serve => server::serve(config).await?,
        Command::Migrate => {
            let store = server::open_database(&config).await?;
            store.close().await;
            println!("database is migrated and seeded");
        }
        Command::Config(ConfigCommand::Defaults) => print!("{}", rswitch::config::DEFAULTS_TOML),
        Command::Codecs => print_codecs(),
        Command::Config(ConfigCommand::Check) => println!("{config:#?}"),
        Command::Extensions(ExtensionsCommand::Create { from, to, group }) => {
            if from > to {
                eprintln!("rswitch: --from {from} is greater than --to {to}");
                return Ok(ExitCode::from(2));
            }
            let store = server::open_database(&config).await?;
            let mut tx = store.begin().await?;
            let group_id = match group {
                Some(name) => Some(seed::group_by_name_or_create(&mut tx, &name).await?),
                None => None,
            };
            let report = seed::create_extension_range(&mut tx, from, to, group_id).await?;
            tx.commit().await?;
            println!("created {} extensions", report.created.len());
            for (number, kind, id) in &report.skipped {
                println!("skipped {number}: already used by {kind} {id}");
            }
            store.close().await;
        }
        Command::Extensions(ExtensionsCommand::List { format }) => {
            let store = server::open_database(&config).await?;
            let groups = store.all::<ExtensionGroup>().await?;
            let mut extensions = store.list::<Extension>(&ListQuery::default()).await?;
            extensions
                .sort_by(|a, b| (a.number.len(), &a.number).cmp(&(b.number.len(), &b.number)));
            let rows: Vec<[String; 4]> = extensions
                .iter()
                .map(|e| {
                    let group = e
                        .group_id
                        .and_then(|id| groups.iter().find(|g| g.id == id))
                        .map_or_else(String::new, |g| g.name.clone());
                    [
                        e.number.clone(),
                        e.name.clone(),
                        group,
                        e.password.expose().to_owned(),
                    ]
                })
                .collect();
            print_extensions(format, &rows);
            store.close().await;
        }
        Command::Admin(AdminCommand::ResetPassword { username, password }) => {
            let store = server::open_database(&config).await?;
            let (password, generated) = match password {
                Some(p) if p.len() >= 8 => (Secret::new(p), false),
                Some(_) => {
                    eprintln!("rswitch: --password must be at least 8 characters");
                    return Ok(ExitCode::from(2));
                }
                None => (random_password(), true),
            };
            seed::reset_admin_password(&store, &username, &password).await?;
            store.close().await;
            if generated {
                println!("new password for {username}: {}", password.expose());
            } else {
                println!("password of {username} changed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const LIST_HEADER: [&str; 4] = ["number", "name", "group", "password"];

/// Prints the list; a reader that goes away early (`| head`) ends the output quietly.
fn print_extensions(format: ListFormat, rows: &[[String; 4]]) {
    use std::fmt::Write as _;
    let mut out = String::new();
    match format {
        ListFormat::Csv => {
            let _ = writeln!(out, "{}", LIST_HEADER.join(","));
            for row in rows {
                let cells: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
                let _ = writeln!(out, "{}", cells.join(","));
            }
        }
        ListFormat::Table => {
            let mut widths = LIST_HEADER.map(|h| h.chars().count());
            for row in rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let mut line = |cells: [&str; 4]| {
                let padded: Vec<String> = cells
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                    .collect();
                let _ = writeln!(out, "{}", padded.join("  ").trim_end());
            };
            line(LIST_HEADER);
            for row in rows {
                line([&row[0], &row[1], &row[2], &row[3]]);
            }
        }
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
}

/// RFC 4180 quoting: cells with a comma, quote or line break are quoted, quotes doubled.
fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

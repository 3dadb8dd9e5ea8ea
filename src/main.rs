use std::process::ExitCode;

use clap::Parser;
use streamforge::cli::{Cli, Command, TokenAction, TokenCommand};
use streamforge::config::Config;
use streamforge::package::PackageArgs;
use streamforge::{package, server, systemd, telemetry};

/// mimalloc instead of glibc's malloc: requests allocate and free many
/// small objects across the runtime's threads (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (overrides, serve) = match &cli.command {
        Command::Serve(overrides) => (overrides, true),
        Command::Config(args) if args.default => {
            print!("{}", streamforge::config::reference::default_toml());
            return ExitCode::SUCCESS;
        }
        Command::Config(args) if args.reference => {
            print!("{}", streamforge::config::reference::markdown());
            return ExitCode::SUCCESS;
        }
        Command::Config(args) => (&args.overrides, false),
        Command::Token(command) => return token_command(cli.config.as_deref(), command),
        Command::Package(args) => return package_command(args),
        Command::Openapi => {
            println!("{}", streamforge::http::openapi_json());
            return ExitCode::SUCCESS;
        }
    };
    let config = match Config::load(cli.config.as_deref(), overrides.to_table()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("streamforge: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    if !serve {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if let Err(err) = telemetry::init(&config.log) {
        eprintln!("streamforge: cannot start logging: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("streamforge: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut signal = server::TerminationSignal::watch();
        let running = match server::start(config).await {
            Ok(running) => running,
            Err(err) => {
                tracing::error!("cannot start: {err}");
                eprintln!("streamforge: cannot start: {err}");
                return ExitCode::FAILURE;
            }
        };
        systemd::ready(&running);
        let watchdog = systemd::watchdog();
        let token = running.shutdown_token();
        tokio::select! {
            () = signal.recv() => token.cancel(),
            () = token.cancelled() => {}
        }
        systemd::stopping();
        running.wait().await;
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        ExitCode::SUCCESS
    })
}

fn package_command(args: &PackageArgs) -> ExitCode {
    match package::run(args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("streamforge package: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `streamforge token …`: token administration on the configured database.
fn token_command(config_file: Option<&std::path::Path>, command: &TokenCommand) -> ExitCode {
    let config = match Config::load(config_file, command.overrides.to_table()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("streamforge: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("streamforge: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if let Err(err) = std::fs::create_dir_all(&config.data_dir) {
            eprintln!(
                "streamforge: cannot create {}: {err}",
                config.data_dir.display()
            );
            return ExitCode::FAILURE;
        }
        let db = match streamforge_actors::db::Database::open(&config.database_url()).await {
            Ok(db) => db,
            Err(err) => {
                eprintln!("streamforge: {err}");
                return ExitCode::FAILURE;
            }
        };
        let result = match &command.action {
            TokenAction::Create { name } => db.create_token(name).await.map(|(id, token)| {
                eprintln!("token {id} created; it is shown only now:");
                println!("{token}");
                true
            }),
            TokenAction::List => db.tokens().await.map(|tokens| {
                for token in tokens {
                    let state = if token.revoked_at_ms.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!("{}\t{}\t{state}", token.id, token.name);
                }
                true
            }),
            TokenAction::Revoke { id } => db.revoke_token(id).await.inspect(|revoked| {
                if *revoked {
                    eprintln!("token {id} revoked");
                } else {
                    eprintln!("streamforge: no active token {id}");
                }
            }),
        };
        db.close().await;
        match result {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(err) => {
                eprintln!("streamforge: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

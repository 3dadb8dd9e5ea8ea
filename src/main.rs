use std::process::ExitCode;

use clap::Parser;
use streamforge::cli::{Cli, Command};
use streamforge::config::Config;
use streamforge::package::PackageArgs;
use streamforge::{package, server, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (overrides, serve) = match &cli.command {
        Command::Serve(overrides) => (overrides, true),
        Command::Config(overrides) => (overrides, false),
        Command::Package(args) => return package_command(args),
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
        let running = match server::start(config).await {
            Ok(running) => running,
            Err(err) => {
                tracing::error!("cannot start: {err}");
                eprintln!("streamforge: cannot start: {err}");
                return ExitCode::FAILURE;
            }
        };
        let token = running.shutdown_token();
        tokio::select! {
            () = server::termination_signal() => token.cancel(),
            () = token.cancelled() => {}
        }
        running.wait().await;
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

use std::process::ExitCode;

use clap::Parser as _;
use rmap_user::{
    bench,
    cli::{Cli, Command},
    live, probe,
    session::AttachFailed,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        // Workloads run on blocking threads: name them like the program, so that walks they
        // cause carry the comm `rmap-trace` (and `--comm rmap-trace` finds them).
        .thread_name("rmap-trace")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmap-trace: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Some(Command::Probe { json }) => probe::run(json.as_deref()),
            Some(Command::Report { files }) => rmap_user::export::compare::report(files),
            Some(Command::Compare { a, b }) => rmap_user::export::compare::compare(a, b),
            Some(Command::Plot { files, output }) => rmap_user::export::plot::plot_files(files, output),
            Some(Command::Workload { types, bench: b }) => bench::workload_only(types, b).await,
            None if cli.attach_only => live::run(&cli.trace).await,
            None => bench::run(&cli.trace, &cli.bench).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(AttachFailed(outcome)) = e.downcast_ref::<AttachFailed>() {
                for line in outcome.report() {
                    eprintln!("{line}");
                }
            }
            eprintln!("rmap-trace: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

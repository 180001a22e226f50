use std::process::ExitCode;

use clap::Parser as _;
use rmap_user::{
    cli::{Cli, Command},
    live, probe,
    session::AttachFailed,
    workload,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmap-trace: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Some(Command::Probe { json }) => probe::run(json.as_deref()),
            Some(Command::Workload {
                types,
                pages,
                max_page_sharing,
                merge_timeout,
            }) => {
                for ty in types {
                    let timeout = std::time::Duration::from_secs_f64(*merge_timeout);
                    let ran = workload::run(*ty, *pages as usize, *max_page_sharing, timeout)?;
                    println!(
                        "workload: {} pages {} vmas {} migrated {} to node {}",
                        ran.page_type, ran.pages, ran.vmas, ran.migrated, ran.target_node
                    );
                }
                Ok(())
            }
            None if cli.attach_only => live::run(&cli.trace).await,
            None => anyhow::bail!(
                "the benchmark workload is not available in this build yet; use --attach-only or `probe`"
            ),
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

use std::process::ExitCode;

use clap::Parser as _;
use rmap_user::{cli::Cli, cmd, session::AttachFailed};

fn main() -> ExitCode {
    rmap_user::memory::one_arena();
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Before any thread starts: threads inherit the effective set.
    if let Err(e) = rmap_user::privs::raise_permitted() {
        eprintln!("rmap-trace: warning: making the permitted capabilities effective: {e}");
    }
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
    match runtime.block_on(cmd::run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(AttachFailed(outcome)) = e.downcast_ref::<AttachFailed>() {
                for line in outcome.report() {
                    eprintln!("{line}");
                }
            }
            eprintln!("rmap-trace: error: {}", rmap_user::printable::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

//! `patronage`: the command-line front of the engine. Parses arguments, calls the library, maps
//! errors to exit codes. No data logic lives here.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, RulesCommand};

/// Exit codes (documented in the README): 0 success, 1 data or configuration error, 2 usage
/// error, 3 internal error (a bug), 4 the models failed but every other table was published,
/// 5 another run holds the output directory (retry later).
#[derive(Debug, Clone, Copy)]
enum Exit {
    Ok = 0,
    DataOrConfig = 1,
    Usage = 2,
    Internal = 3,
    ModelsFailed = 4,
    Busy = 5,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// The allocator: mimalloc. A nightly batch job allocates and frees column buffers of hundreds of
/// megabytes stage after stage, and on the 2-core VMs we run on a first-touch page fault costs
/// microseconds: the allocator that reuses freed memory best and spreads less is the faster job.
/// At 10.5M order rows (4.7M customers) `run --no-models` went from 22.8 s / 7.5 GiB peak with
/// glibc (tuned with mallopt to never unmap) to 17.3 s / 5.2 GiB. The benches use it too.
///
/// Built without transparent huge pages (the `no_thp` feature: mimalloc does not `madvise` its
/// memory huge, so the kernel's `madvise` policy gives it small pages). A huge page is zeroed
/// whole at its first touch and may stall for compaction; our buffers are written once,
/// sequentially, so the TLB gains little. At 10M typed order rows `run --no-models
/// --no-clusters --no-loyalty` took 4.15 → 3.43 s (system time 1.83 → 0.71 s), medians of 6
/// interleaved runs (the same as `MIMALLOC_ALLOW_THP=0`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A panic is a bug: report it as an internal error (exit 3), never exit 101.
    let body = || match cli.command {
        Command::Run(args) => cli::run(args),
        Command::Rules(RulesCommand::Check { table }) => cli::rules_check(&table),
        Command::Rules(RulesCommand::List) => cli::rules_list(),
        Command::Generate(args) => cli::generate(args),
        Command::Report(args) => cli::report(args),
        Command::Partial(args) => cli::phase("partial", args),
        Command::Fit(args) => cli::phase("fit", args),
        Command::Score(args) => cli::phase("score", args),
        Command::Publish(args) => cli::phase("publish", args),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        patronage_engine::on_polars_pool(body)
    }));
    let result = match result {
        Ok(result) => result,
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "error: internal error (a bug in patronage; the message above says where). Nothing was published."
            );
            return Exit::Internal.into();
        }
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return Exit::Ok.into();
            }
            let engine = err.downcast_ref::<patronage_engine::EngineError>();
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            match engine {
                Some(e) if e.is_usage_error() => Exit::Usage.into(),
                Some(e) if e.is_busy() => Exit::Busy.into(),
                Some(e) if !e.is_user_error() => Exit::Internal.into(),
                _ => Exit::DataOrConfig.into(),
            }
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

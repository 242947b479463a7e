//! `patronage`: the command-line front of the engine. Parses arguments, calls the library, maps
//! errors to exit codes. No data logic lives here.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, RulesCommand};

/// Exit codes: 0 success, 1 data or configuration error, 2 usage error (clap), 3 internal error.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Ok = 0,
    DataOrConfig = 1,
    Internal = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run(args),
        Command::Rules(RulesCommand::Check { table }) => cli::rules_check(&table),
        Command::Rules(RulesCommand::List) => cli::rules_list(),
        Command::Generate(args) => cli::generate(args),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return Exit::Ok.into();
            }
            let internal = err
                .downcast_ref::<patronage_engine::EngineError>()
                .is_some_and(|e| !e.is_user_error());
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            if internal {
                Exit::Internal.into()
            } else {
                Exit::DataOrConfig.into()
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

//! The `neuroloop` command line; its commands are in `cli/`. `anyhow` lives
//! only in this binary: library errors are typed, and this layer adds the
//! context a user needs and exits non-zero.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command, TriggerBoxCommand};
use cli::live::{devices, emulate, latency_test, run, trigger_box_test};
use cli::offline::{click, evaluate, info, replay, report, simulate};

fn main() {
    let cli = Cli::parse();
    let verbosity = i8::try_from(i16::from(cli.verbose) - i16::from(cli.quiet)).unwrap_or(0);
    let logging = neuroloop::logging::init(verbosity);
    let result = match cli.command {
        Command::Simulate(a) => simulate(a),
        Command::Replay(a) => replay(a),
        Command::Eval(a) => evaluate(a),
        Command::Report(a) => report(a),
        Command::Run(a) => run(a),
        Command::LatencyTest(a) => latency_test(a),
        Command::Click(a) => click(a),
        Command::Emulate(a) => emulate(a),
        Command::Devices(a) => devices(&a.probe),
        Command::Info(a) => info(a),
        Command::TriggerBox(a) => match a.command {
            TriggerBoxCommand::Test(t) => trigger_box_test(&t),
        },
    };
    if let Err(e) = result {
        tracing::error!("{}", error_text(&e));
        drop(logging); // flushes log.txt before exiting
        std::process::exit(1);
    }
}

/// The error and its causes, each cause once: library errors often carry
/// their cause's text in their own message already.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

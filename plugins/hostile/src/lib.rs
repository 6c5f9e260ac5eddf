//! `hostile` — an aimass cleaner that misbehaves on purpose, to test the host's defences
//! (deadlines / fuel, memory limits, stack limits, trap isolation, output size limits, instance
//! pools and hot swap).
//!
//! It never decodes Arrow: it works on the raw IPC bytes ([`RawCleaner`]), so `ok` and `sleep`
//! return the input bytes exactly.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `mode` | `ok` | the behaviour, below |
//! | `size` | `67108864` (64 MiB) | `big`: output size in bytes; `stderr`: bytes written |
//! | `ms` | `1000` | `sleep`, `host-sleep`: milliseconds to wait |
//! | `kind` | `internal` | `error`: `input`, `config` or `internal` |
//! | `message` | `hostile plugin error` | `error`, `panic`, `stderr`: the message |
//!
//! Any other key is an invalid-config error.
//!
//! | mode | behaviour |
//! | --- | --- |
//! | `ok` | return the input unchanged |
//! | `spin` | loop forever without host calls (`black_box` keeps the loop) |
//! | `log-spin` | loop forever calling the host's `logging.log` |
//! | `grow` | allocate 1 MiB chunks filled with nonzero bytes, keep them, forever |
//! | `recurse` | unbounded non-tail recursion with a 1 KiB stack array per frame |
//! | `trap` | execute `unreachable` (wasm); panic natively |
//! | `panic` | `panic!("hostile: {message}")` — the host should show that line |
//! | `host-sleep` | `std::thread::sleep(ms)`: blocks inside a WASI host call, not in wasm code |
//! | `stderr` | write `size` bytes to stderr in 1 KiB lines, then panic with `message` |
//! | `big` | return `size` bytes of `0xAB` (not Arrow) |
//! | `sleep` | busy-wait `ms` milliseconds (`std::time::Instant`), then return the input |
//! | `error` | return `plugin-error` of `kind` with `message` |

use std::hint::black_box;
use std::time::{Duration, Instant};

use aimass_plugin_sdk::{Config, Error, RawCleaner, Result, export_raw_cleaner, log};

/// The plugin type bound to the `cleaner` world.
pub struct Hostile;

impl RawCleaner for Hostile {
    fn clean_raw(input: Vec<u8>, config: &Config) -> Result<Vec<u8>> {
        run(Mode::from_config(config)?, input)
    }
}

export_raw_cleaner!(Hostile);

/// Config keys this plugin accepts.
pub const CONFIG_KEYS: &[&str] = &["mode", "size", "ms", "kind", "message"];

/// Default `big` output size: 64 MiB.
pub const DEFAULT_BIG_SIZE: usize = 64 << 20;

/// Default `sleep` duration in milliseconds.
pub const DEFAULT_SLEEP_MS: u64 = 1000;

/// Which `plugin-error` case the `error` mode returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Input,
    Config,
    Internal,
}

/// The selected behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Spin,
    LogSpin,
    Grow,
    Recurse,
    Trap,
    Big { size: usize },
    Sleep { ms: u64 },
    HostSleep { ms: u64 },
    Panic { message: String },
    Stderr { size: usize, message: String },
    Error { kind: ErrorKind, message: String },
}

impl Mode {
    /// Parse the config (see the module docs).
    pub fn from_config(config: &Config) -> Result<Self> {
        config.check_keys(CONFIG_KEYS)?;
        let mode = config.choice(
            "mode",
            &[
                "ok",
                "spin",
                "log-spin",
                "grow",
                "recurse",
                "trap",
                "big",
                "sleep",
                "host-sleep",
                "panic",
                "stderr",
                "error",
            ],
            "ok",
        )?;
        Ok(match mode {
            "spin" => Mode::Spin,
            "log-spin" => Mode::LogSpin,
            "grow" => Mode::Grow,
            "recurse" => Mode::Recurse,
            "trap" => Mode::Trap,
            "big" => Mode::Big {
                size: config.parse_or("size", DEFAULT_BIG_SIZE)?,
            },
            "sleep" => Mode::Sleep {
                ms: config.parse_or("ms", DEFAULT_SLEEP_MS)?,
            },
            "host-sleep" => Mode::HostSleep {
                ms: config.parse_or("ms", DEFAULT_SLEEP_MS)?,
            },
            "panic" => Mode::Panic {
                message: config.get_or("message", "hostile plugin error").to_owned(),
            },
            "stderr" => Mode::Stderr {
                size: config.parse_or("size", DEFAULT_BIG_SIZE)?,
                message: config.get_or("message", "hostile plugin error").to_owned(),
            },
            "error" => Mode::Error {
                kind: match config.choice("kind", &["input", "config", "internal"], "internal")? {
                    "input" => ErrorKind::Input,
                    "config" => ErrorKind::Config,
                    _ => ErrorKind::Internal,
                },
                message: config.get_or("message", "hostile plugin error").to_owned(),
            },
            _ => Mode::Ok,
        })
    }
}

/// Behave as `mode` says on `input`.
pub fn run(mode: Mode, input: Vec<u8>) -> Result<Vec<u8>> {
    match mode {
        Mode::Ok => Ok(input),
        Mode::Spin => spin(),
        Mode::LogSpin => log_spin(),
        Mode::Grow => grow(),
        Mode::Recurse => {
            let r = recurse(0);
            Ok(r.to_le_bytes().to_vec())
        }
        Mode::Trap => trap(),
        Mode::Big { size } => Ok(vec![0xAB; size]),
        Mode::Sleep { ms } => {
            busy_wait(Duration::from_millis(ms));
            Ok(input)
        }
        Mode::HostSleep { ms } => {
            std::thread::sleep(Duration::from_millis(ms));
            Ok(input)
        }
        Mode::Panic { message } => panic!("hostile: {message}"),
        Mode::Stderr { size, message } => {
            use std::io::Write;
            let line = [b'e'; 1023];
            let mut stderr = std::io::stderr();
            for _ in 0..size.div_ceil(1024) {
                // Errors are ignored: a host may refuse writes, which must not stop the test.
                let _ = stderr
                    .write_all(&line)
                    .and_then(|()| stderr.write_all(b"\n"));
            }
            panic!("hostile: {message}")
        }
        Mode::Error { kind, message } => Err(match kind {
            ErrorKind::Input => Error::invalid_input(message),
            ErrorKind::Config => Error::invalid_config(message),
            ErrorKind::Internal => Error::internal(message),
        }),
    }
}

/// Pure computation forever: only a deadline (epoch interruption or fuel) stops it.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Host calls forever: the host's rate limit drops the records, its deadline stops the loop.
fn log_spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
        log::info(format!("hostile log-spin {n}"));
    }
}

/// Unbounded memory: 1 MiB chunks of nonzero bytes (so every page is touched), all kept alive.
fn grow() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0x5Au8; 1 << 20];
        hoard.push(black_box(chunk));
        black_box(&mut hoard);
    }
}

/// Unbounded recursion. Each frame owns a 1 KiB array passed through `black_box`, and the result
/// of the recursive call is used after it returns, so it is neither a tail call nor a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    frame[(depth % 1024) as usize] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return u64::from(frame[0]);
    }
    recurse(depth + 1).wrapping_add(u64::from(frame[(depth % 1024) as usize]))
}

/// A Wasm trap: `unreachable` on wasm; natively (unit tests) a panic, which is what a panic is
/// on wasm anyway.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::unreachable()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        panic!("hostile: trap")
    }
}

/// Busy-wait in wasm code: keeps the instance occupied without any host call (`host-sleep`
/// is the variant that blocks inside WASI instead).
fn busy_wait(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    fn mode(pairs: &[(&str, &str)]) -> Result<Mode> {
        Mode::from_config(&cfg(pairs))
    }

    #[test]
    fn parses_host_sleep_panic_and_stderr() {
        assert_eq!(
            mode(&[("mode", "host-sleep"), ("ms", "5")]).unwrap(),
            Mode::HostSleep { ms: 5 }
        );
        assert_eq!(
            mode(&[("mode", "panic"), ("message", "boom")]).unwrap(),
            Mode::Panic {
                message: "boom".into()
            }
        );
        assert_eq!(
            mode(&[("mode", "stderr"), ("size", "2048")]).unwrap(),
            Mode::Stderr {
                size: 2048,
                message: "hostile plugin error".into()
            }
        );
        let out =
            Hostile::clean_raw(vec![1], &cfg(&[("mode", "host-sleep"), ("ms", "1")])).unwrap();
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn parses_every_mode() {
        assert_eq!(mode(&[]).unwrap(), Mode::Ok);
        assert_eq!(mode(&[("mode", "ok")]).unwrap(), Mode::Ok);
        assert_eq!(mode(&[("mode", "spin")]).unwrap(), Mode::Spin);
        assert_eq!(mode(&[("mode", "log-spin")]).unwrap(), Mode::LogSpin);
        assert_eq!(mode(&[("mode", "grow")]).unwrap(), Mode::Grow);
        assert_eq!(mode(&[("mode", "recurse")]).unwrap(), Mode::Recurse);
        assert_eq!(mode(&[("mode", "trap")]).unwrap(), Mode::Trap);
        assert_eq!(
            mode(&[("mode", "big")]).unwrap(),
            Mode::Big {
                size: 64 * 1024 * 1024
            }
        );
        assert_eq!(
            mode(&[("mode", "big"), ("size", "10")]).unwrap(),
            Mode::Big { size: 10 }
        );
        assert_eq!(
            mode(&[("mode", "sleep")]).unwrap(),
            Mode::Sleep { ms: 1000 }
        );
        assert_eq!(
            mode(&[("mode", "sleep"), ("ms", "25")]).unwrap(),
            Mode::Sleep { ms: 25 }
        );
        assert_eq!(
            mode(&[("mode", "error")]).unwrap(),
            Mode::Error {
                kind: ErrorKind::Internal,
                message: "hostile plugin error".into()
            }
        );
        assert_eq!(
            mode(&[("mode", "error"), ("kind", "config"), ("message", "nope")]).unwrap(),
            Mode::Error {
                kind: ErrorKind::Config,
                message: "nope".into()
            }
        );
    }

    #[test]
    fn bad_config_is_invalid_config() {
        for pairs in [
            vec![("mode", "explode")],
            vec![("mode", "big"), ("size", "-1")],
            vec![("mode", "big"), ("size", "lots")],
            vec![("mode", "sleep"), ("ms", "1.5")],
            vec![("mode", "error"), ("kind", "fatal")],
            vec![("mdoe", "ok")],
        ] {
            let err = mode(&pairs).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn ok_returns_input_unchanged() {
        let input = b"\xff\x00arbitrary bytes".to_vec();
        assert_eq!(
            Hostile::clean_raw(input.clone(), &Config::default()),
            Ok(input)
        );
    }

    #[test]
    fn big_returns_size_bytes() {
        let out =
            Hostile::clean_raw(vec![1, 2, 3], &cfg(&[("mode", "big"), ("size", "4096")])).unwrap();
        assert_eq!(out.len(), 4096);
        assert!(out.iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn sleep_waits_then_returns_input() {
        let start = Instant::now();
        let out = Hostile::clean_raw(vec![7; 5], &cfg(&[("mode", "sleep"), ("ms", "30")])).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(out, vec![7; 5]);
    }

    #[test]
    fn error_mode_returns_each_kind() {
        let run = |kind: &str| {
            Hostile::clean_raw(
                vec![],
                &cfg(&[("mode", "error"), ("kind", kind), ("message", "m")]),
            )
            .unwrap_err()
        };
        assert_eq!(run("input"), Error::invalid_input("m"));
        assert_eq!(run("config"), Error::invalid_config("m"));
        assert_eq!(run("internal"), Error::internal("m"));
    }

    #[test]
    #[should_panic(expected = "hostile: trap")]
    fn trap_panics_natively() {
        let _ = Hostile::clean_raw(vec![], &cfg(&[("mode", "trap")]));
    }
}

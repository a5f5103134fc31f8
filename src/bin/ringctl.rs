//! `ringctl`: the ringkv command-line client (docs/operations.md).
//!
//! Output is plain and scriptable: values are written raw (exact bytes, plus
//! a newline only when stdout is a terminal); `--json` prints one JSON
//! document per command. Exit status: 0 success, 1 key not found (get) or
//! CAS mismatch, 2 usage error, 3 any other error (connection, server status:
//! UNAVAILABLE when too few replicas answer for the consistency level, TIMEOUT
//! when they did not answer in time, whose write may or may not be applied).
//!
//! Single-key requests are token-aware by default: ringctl fetches the ring
//! from the node it connects to and sends each key to a replica's owning
//! shard; `--no-token-aware` sends everything to that node (which
//! coordinates). `--consistency one|quorum|all` sets the level on the wire
//! (1, 2, 3); without it the node's default applies (QUORUM unless
//! configured otherwise).

use clap::{Parser, Subcommand, ValueEnum};
use ringkv_net::client::{CasExpectOwned, CasOutcome, Client, ClientOptions, ScanSpec, ValueOwned};
use ringkv_net::client_frame::{Consistency, TtlState, WireVersion};
use serde_json::{json, Value as Json};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// ringctl: talk to a ringkv node.
#[derive(Parser)]
#[command(name = "ringctl", version, about)]
struct Cli {
    /// Node address(es), HOST:PORT; repeat or comma-separate for several nodes.
    #[arg(
        long,
        env = "RINGKV_ADDR",
        default_value = "127.0.0.1:7379",
        value_delimiter = ','
    )]
    addr: Vec<String>,
    /// Consistency level of every request (default: the node's, QUORUM
    /// unless configured otherwise).
    #[arg(long, value_enum)]
    consistency: Option<Level>,
    /// Send every request to the node given by --addr instead of a replica
    /// of its key.
    #[arg(long)]
    no_token_aware: bool,
    /// Print structured JSON instead of plain output.
    #[arg(long)]
    json: bool,
    /// Per-request timeout, milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    One,
    Quorum,
    All,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a key's value (exit 1 if it does not exist).
    Get { key: String },
    /// Write a key. VALUE `-` reads the value from stdin.
    Put {
        key: String,
        value: String,
        /// Time to live: milliseconds, or with a unit (500ms, 10s, 5m, 2h).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Delete a key.
    Del { key: String },
    /// Print the values of several keys, one per line (`(nil)` if missing).
    Mget {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Write several keys: KEY VALUE [KEY VALUE ...].
    Mput {
        #[arg(required = true, num_args = 2..)]
        pairs: Vec<String>,
        /// Time to live of every pair.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List keys and values in key order (`key<TAB>value` lines).
    Scan {
        /// Only keys starting with this prefix.
        #[arg(long, conflicts_with_all = ["start", "end"])]
        prefix: Option<String>,
        /// First key (inclusive).
        #[arg(long)]
        start: Option<String>,
        /// End key (exclusive).
        #[arg(long)]
        end: Option<String>,
        /// Resume strictly after this key.
        #[arg(long)]
        after: Option<String>,
        /// Largest number of entries printed.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Add to an integer value stored as decimal text, as Redis does (missing = 0); prints the result.
    Incr {
        key: String,
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        by: i64,
    },
    /// Subtract from an integer value; prints the result.
    Decr {
        key: String,
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        by: i64,
    },
    /// Compare-and-swap: write VALUE only if the key matches the expectation (exit 1 if not).
    Cas {
        key: String,
        value: String,
        /// The key must not exist.
        #[arg(long, group = "expect")]
        expect_absent: bool,
        /// The key's version must be HLC:NODE (as printed by get --json / put).
        #[arg(long, group = "expect")]
        expect_version: Option<String>,
        /// The key's value must be these bytes.
        #[arg(long, group = "expect")]
        expect_value: Option<String>,
        /// Time to live of the new value.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Remaining time to live in ms (-1: no expiry, -2: missing key).
    Ttl { key: String },
    /// Whether a key exists (prints true/false).
    Exists { key: String },
    /// Round trip to the node.
    Ping,
    /// Every shard's statistics.
    Stats,
    /// The ring as the node sees it: version, replication factor, and per
    /// node its id, address, shards, rack, token count and the share of the
    /// token space it is the primary replica for.
    Ring,
}

/// A failure, with the exit status it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl From<ringkv_net::ClientError> for Failure {
    fn from(e: ringkv_net::ClientError) -> Self {
        Failure {
            code: 3,
            message: e.to_string(),
        }
    }
}

fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

/// Parses `1500`, `1500ms`, `10s`, `5m`, `2h`.
fn parse_duration(s: &str) -> Result<Duration, Failure> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| usage(format!("{s:?} is not a duration (e.g. 500ms, 10s, 5m)")))?;
    let ms = match unit {
        "" | "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => {
            return Err(usage(format!(
                "unknown duration unit in {s:?} (ms, s, m, h)"
            )))
        }
    };
    match ms {
        Some(0) => Err(usage("a TTL must be positive".into())),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(usage(format!("duration {s:?} is too large"))),
    }
}

fn ttl_of(s: &Option<String>) -> Result<Option<Duration>, Failure> {
    s.as_deref().map(parse_duration).transpose()
}

fn version_json(v: WireVersion) -> Json {
    json!({"hlc": v.hlc, "node": v.node})
}

fn version_text(v: WireVersion) -> String {
    format!("{}:{}", v.hlc, v.node)
}

fn parse_version(s: &str) -> Result<WireVersion, Failure> {
    let bad = || usage(format!("{s:?} is not a version HLC:NODE"));
    let (h, n) = s.split_once(':').ok_or_else(bad)?;
    Ok(WireVersion {
        hlc: h.parse().map_err(|_| bad())?,
        node: n.parse().map_err(|_| bad())?,
    })
}

/// Bytes as JSON: a string when UTF-8, else `{"hex": ...}`.
fn bytes_json(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::String(s.to_string()),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

fn value_json(v: &ValueOwned) -> Json {
    json!({
        "value": bytes_json(&v.value),
        "version": version_json(v.version),
        "expires_at_ms": v.expires_at_ms,
    })
}

struct Out {
    json: bool,
    tty: bool,
    stdout: std::io::StdoutLock<'static>,
}

impl Out {
    fn raw(&mut self, bytes: &[u8]) {
        let _ = self.stdout.write_all(bytes);
        if self.tty {
            let _ = self.stdout.write_all(b"\n");
        }
    }
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.stdout, "{text}");
    }
    fn doc(&mut self, j: Json) {
        let _ = writeln!(self.stdout, "{j}");
    }
}

impl From<Level> for Consistency {
    fn from(level: Level) -> Consistency {
        match level {
            Level::One => Consistency::One,
            Level::Quorum => Consistency::Quorum,
            Level::All => Consistency::All,
        }
    }
}

/// The client options the command line asks for.
fn client_options(cli: &Cli) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(cli.timeout_ms.max(1)),
        consistency: cli
            .consistency
            .map_or(Consistency::Default, Consistency::from),
        token_aware: !cli.no_token_aware,
        ..ClientOptions::default()
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let options = client_options(&cli);
    let mut out = Out {
        json: cli.json,
        tty: std::io::stdout().is_terminal(),
        stdout: std::io::stdout().lock(),
    };
    let mut client = Client::connect(&cli.addr, options)?;
    match cli.command {
        Cmd::Get { key } => match client.get(key.as_bytes())? {
            Some(v) if out.json => out.doc(value_json(&v)),
            Some(v) => out.raw(&v.value),
            None => {
                if out.json {
                    out.doc(Json::Null);
                }
                return Err(Failure {
                    code: 1,
                    message: format!("key {key:?} not found"),
                });
            }
        },
        Cmd::Put { key, value, ttl } => {
            let value = if value == "-" {
                let mut v = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut v)
                    .map_err(|e| usage(format!("reading the value from stdin: {e}")))?;
                v
            } else {
                value.into_bytes()
            };
            let v = client.put(key.as_bytes(), &value, ttl_of(&ttl)?)?;
            written(&mut out, v);
        }
        Cmd::Del { key } => {
            let v = client.delete(key.as_bytes())?;
            written(&mut out, v);
        }
        Cmd::Mget { keys } => {
            let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let values = client.mget(&refs)?;
            if out.json {
                let items: Vec<Json> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| json!({"key": k, "found": v.as_ref().map(value_json)}))
                    .collect();
                out.doc(Json::Array(items));
            } else {
                for v in values {
                    match v {
                        Some(v) => {
                            let _ = out.stdout.write_all(&v.value);
                            out.line("");
                        }
                        None => out.line("(nil)"),
                    }
                }
            }
        }
        Cmd::Mput { pairs, ttl } => {
            if pairs.len() % 2 != 0 {
                return Err(usage("mput takes KEY VALUE pairs".into()));
            }
            let kv: Vec<(&[u8], &[u8])> = pairs
                .chunks(2)
                .map(|p| (p[0].as_bytes(), p[1].as_bytes()))
                .collect();
            client.mput(&kv, ttl_of(&ttl)?)?;
            if out.json {
                out.doc(json!({"ok": true, "written": kv.len()}));
            } else {
                out.line("OK");
            }
        }
        Cmd::Scan {
            prefix,
            start,
            end,
            after,
            limit,
        } => scan(&mut client, &mut out, prefix, start, end, after, limit)?,
        Cmd::Incr { key, by } => integer(&mut out, client.incr(key.as_bytes(), by)?),
        Cmd::Decr { key, by } => {
            let delta = by
                .checked_neg()
                .ok_or_else(|| usage("decrement out of range".into()))?;
            integer(&mut out, client.incr(key.as_bytes(), delta)?);
        }
        Cmd::Cas {
            key,
            value,
            expect_absent,
            expect_version,
            expect_value,
            ttl,
        } => {
            let expect = match (expect_absent, expect_version, expect_value) {
                (true, None, None) => CasExpectOwned::Absent,
                (false, Some(v), None) => CasExpectOwned::Version(parse_version(&v)?),
                (false, None, Some(v)) => CasExpectOwned::Value(v.into_bytes()),
                _ => {
                    return Err(usage(
                        "cas needs one of --expect-absent, --expect-version, --expect-value".into(),
                    ))
                }
            };
            match client.cas(key.as_bytes(), expect, value.as_bytes(), ttl_of(&ttl)?)? {
                CasOutcome::Written(v) => written(&mut out, v),
                CasOutcome::Mismatch { current } => {
                    if out.json {
                        out.doc(
                            json!({"ok": false, "current": current.as_ref().map(|(v, ver)| json!({
                            "value": bytes_json(v), "version": version_json(*ver)}))}),
                        );
                    }
                    let message = match current {
                        Some((_, ver)) => {
                            format!("CAS mismatch: current version {}", version_text(ver))
                        }
                        None => "CAS mismatch: the key does not exist".into(),
                    };
                    return Err(Failure { code: 1, message });
                }
            }
        }
        Cmd::Ttl { key } => {
            let (n, state) = match client.ttl(key.as_bytes())? {
                TtlState::Missing => (-2i64, "missing"),
                TtlState::NoExpiry => (-1, "no_expiry"),
                TtlState::RemainingMs(ms) => (i64::try_from(ms).unwrap_or(i64::MAX), "expires"),
            };
            if out.json {
                out.doc(json!({"state": state, "remaining_ms": n.max(0)}));
            } else {
                out.line(&n.to_string());
            }
        }
        Cmd::Exists { key } => {
            let b = client.exists(key.as_bytes())?;
            if out.json {
                out.doc(json!({ "exists": b }));
            } else {
                out.line(if b { "true" } else { "false" });
            }
        }
        Cmd::Ping => {
            let rtt = client.ping()?;
            if out.json {
                out.doc(json!({"pong": true, "rtt_us": rtt.as_micros() as u64}));
            } else {
                out.line(&format!("PONG {} us", rtt.as_micros()));
            }
        }
        Cmd::Stats => {
            let text = client.stats()?;
            if out.json {
                let mut shards: Vec<Json> = Vec::new();
                let mut cur: Option<serde_json::Map<String, Json>> = None;
                for line in text.lines() {
                    if line.starts_with("# shard") {
                        shards.extend(cur.take().map(Json::Object));
                        cur = Some(serde_json::Map::new());
                    } else if let Some((k, v)) = line.split_once(' ') {
                        let val = v
                            .parse::<i64>()
                            .map_or_else(|_| Json::String(v.into()), Json::from);
                        cur.get_or_insert_with(serde_json::Map::new)
                            .insert(k.into(), val);
                    }
                }
                shards.extend(cur.take().map(Json::Object));
                out.doc(json!({ "shards": shards }));
            } else {
                let _ = out.stdout.write_all(text.as_bytes());
            }
        }
        Cmd::Ring => ring(&client, &mut out)?,
    }
    Ok(())
}

/// The share of the token space (0.0..=1.0) each node is the primary replica
/// for, in the order of `nodes`: the primary of a token is the node of the
/// first vnode token at or after it (wrapping), so vnode token `t_i` owns
/// `(t_{i-1}, t_i]`; equal tokens go to the lower node id, as in the ring.
fn primary_shares(nodes: &[(u32, &[u64])]) -> Vec<f64> {
    let mut all: Vec<(u64, u32)> = nodes
        .iter()
        .flat_map(|(id, tokens)| tokens.iter().map(move |&t| (t, *id)))
        .collect();
    all.sort_unstable();
    let mut owned = vec![0u128; nodes.len()];
    let Some(&(last, _)) = all.last() else {
        return vec![0.0; nodes.len()];
    };
    let mut prev = last;
    for (i, &(t, id)) in all.iter().enumerate() {
        // The first token owns the wrap-around range (last, 2^64) + [0, t].
        let width = if i == 0 {
            u128::from(t) + (1u128 << 64) - u128::from(prev)
        } else {
            u128::from(t - prev)
        };
        if let Some(slot) = nodes.iter().position(|(n, _)| *n == id) {
            owned[slot] += width;
        }
        prev = t;
    }
    owned
        .iter()
        .map(|&w| w as f64 / (1u128 << 64) as f64)
        .collect()
}

fn ring(client: &Client, out: &mut Out) -> Result<(), Failure> {
    let Some(ring) = client.ring() else {
        return Err(Failure {
            code: 3,
            message: "the node does not serve its ring (RING unknown to it)".into(),
        });
    };
    let version = client.ring_version().unwrap_or(ring.version());
    let nodes = ring.nodes();
    let tokens: Vec<(u32, &[u64])> = nodes.iter().map(|n| (n.id, n.tokens.as_slice())).collect();
    let shares = primary_shares(&tokens);
    if out.json {
        let items: Vec<Json> = nodes
            .iter()
            .zip(&shares)
            .map(|(n, share)| {
                json!({
                    "id": n.id,
                    "host": n.host,
                    "port": n.port,
                    "shards": n.shards,
                    "rack": n.rack,
                    "tokens": n.tokens.len(),
                    "primary_share": share,
                })
            })
            .collect();
        out.doc(json!({
            "version": version,
            "replication_factor": ring.configured_replication_factor(),
            "effective_replication_factor": ring.replication_factor(),
            "home_node": client.node_id(),
            "nodes": items,
        }));
        return Ok(());
    }
    out.line(&format!(
        "ring version {version:#018x}, replication factor {} ({} effective), {} node(s)",
        ring.configured_replication_factor(),
        ring.replication_factor(),
        nodes.len()
    ));
    out.line(&format!(
        "{:>6}  {:<24} {:>6}  {:<12} {:>6}  {:>8}",
        "ID", "ADDRESS", "SHARDS", "RACK", "TOKENS", "PRIMARY"
    ));
    for (n, share) in nodes.iter().zip(&shares) {
        let home = if n.id == client.node_id() { " *" } else { "" };
        out.line(&format!(
            "{:>6}  {:<24} {:>6}  {:<12} {:>6}  {:>7.2}%{home}",
            n.id,
            format!("{}:{}", n.host, n.port),
            n.shards,
            if n.rack.is_empty() { "-" } else { &n.rack },
            n.tokens.len(),
            share * 100.0
        ));
    }
    Ok(())
}

fn written(out: &mut Out, v: WireVersion) {
    if out.json {
        out.doc(json!({"ok": true, "version": version_json(v)}));
    } else {
        out.line(&format!("OK {}", version_text(v)));
    }
}

fn integer(out: &mut Out, n: i64) {
    if out.json {
        out.doc(json!({ "value": n }));
    } else {
        out.line(&n.to_string());
    }
}

fn scan(
    client: &mut Client,
    out: &mut Out,
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    after: Option<String>,
    limit: u64,
) -> Result<(), Failure> {
    let page_max = u64::from(ringkv_net::limits::SCAN_LIMIT_MAX);
    let mut spec = ScanSpec {
        prefix: prefix.is_some(),
        start: prefix.or(start).unwrap_or_default().into_bytes(),
        end: end.unwrap_or_default().into_bytes(),
        after: after.unwrap_or_default().into_bytes(),
        limit: 1,
    };
    let mut left = limit;
    let mut entries = Vec::new();
    let mut next = Vec::new();
    while left > 0 {
        spec.limit = left.min(page_max) as u32;
        let page = client.scan(&spec)?;
        left -= (page.entries.len() as u64).min(left);
        entries.extend(page.entries);
        next = page.next_after;
        if next.is_empty() {
            break;
        }
        spec.after = next.clone();
    }
    if out.json {
        let items: Vec<Json> = entries
            .iter()
            .map(|e| json!({"key": bytes_json(&e.key), "value": bytes_json(&e.value), "version": version_json(e.version)}))
            .collect();
        out.doc(json!({"entries": items, "next_after": if next.is_empty() { Json::Null } else { bytes_json(&next) }}));
    } else {
        for e in &entries {
            let _ = out.stdout.write_all(&e.key);
            let _ = out.stdout.write_all(b"\t");
            let _ = out.stdout.write_all(&e.value);
            out.line("");
        }
        if !next.is_empty() {
            eprintln!(
                "(more: continue with --after {})",
                String::from_utf8_lossy(&next)
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("ringctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistency_levels_map_onto_their_wire_numbers() {
        assert_eq!(Consistency::from(Level::One) as u8, 1);
        assert_eq!(Consistency::from(Level::Quorum) as u8, 2);
        assert_eq!(Consistency::from(Level::All) as u8, 3);
        let cli = Cli::parse_from([
            "ringctl",
            "--consistency",
            "all",
            "--no-token-aware",
            "ping",
        ]);
        let options = client_options(&cli);
        assert_eq!(options.consistency, Consistency::All);
        assert!(!options.token_aware);
        let cli = Cli::parse_from(["ringctl", "ping"]);
        let options = client_options(&cli);
        assert_eq!(options.consistency, Consistency::Default);
        assert!(options.token_aware);
    }

    #[test]
    fn primary_shares_cover_the_whole_token_space() {
        let a = [1u64 << 62, 3 << 62];
        let b = [2u64 << 62];
        let shares = primary_shares(&[(1, &a), (2, &b)]);
        assert!((shares[0] - 0.75).abs() < 1e-9, "{shares:?}");
        assert!((shares[1] - 0.25).abs() < 1e-9, "{shares:?}");
        let one = primary_shares(&[(7, &[42])]);
        assert!((one[0] - 1.0).abs() < 1e-9);
        let tie = primary_shares(&[(1, &[10]), (2, &[10])]);
        assert!((tie[0] - 1.0).abs() < 1e-9 && tie[1] == 0.0, "{tie:?}");
    }
}

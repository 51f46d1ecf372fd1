//! jq programs for routes (filters, mappings, ordering keys, answer rules),
//! through jaq: compiled once at start, run per event. An operator who
//! knows jq can map any monitor's events to any target without Rust.
//!
//! Compile errors say where (`line 3, column 7`) and what was expected;
//! runtime errors — including the program's own `error("…")` — come back
//! as a message, for the event's dead letter.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
pub(crate) use jaq_json::Val;

use std::sync::Arc;

use super::jq_bounds;
use super::jq_budget::{budget, evaluators};
use super::nesting;
use super::strict_json::strict_json;

type Data = data::JustLut<Val>;

/// A compiled jq program. A program that surely ends quickly
/// (`jq_bounds`) runs where it is asked for; any other on the evaluator
/// threads (`jq_budget`), never on the relay's.
#[derive(Clone)]
pub(crate) struct Jq {
    filter: Arc<jaq_core::Filter<Data>>,
    inline: bool,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jq")
    }
}

impl Jq {
    /// Compiles `code`; the error names the position and the problem.
    pub(crate) fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errors| {
                let (_, e) = errors.into_iter().next().expect("an error");
                match e {
                    jaq_core::load::Error::Io(io) => io
                        .first()
                        .map(|(path, e)| format!("cannot load {path}: {e}"))
                        .unwrap_or_default(),
                    jaq_core::load::Error::Lex(lex) => lex
                        .first()
                        .map(|(expect, at)| {
                            format!("{}: expected {}", position(code, at), expect.as_str())
                        })
                        .unwrap_or_default(),
                    jaq_core::load::Error::Parse(parse) => parse
                        .first()
                        .map(|(expect, at)| {
                            format!("{}: expected {}", position(code, at), expect.as_str())
                        })
                        .unwrap_or_default(),
                }
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .flat_map(|(_, undefined)| undefined)
                    .map(|(name, what)| {
                        let what = match what {
                            jaq_core::compile::Undefined::Filter(arity) => {
                                format!("undefined filter {name}/{arity}")
                            }
                            jaq_core::compile::Undefined::Var => {
                                format!("undefined variable {name}")
                            }
                            other => format!("undefined {other:?} {name}"),
                        };
                        format!("{}: {what}", position(code, name))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
        Ok(Self {
            filter: Arc::new(filter),
            inline: jq_bounds::bounded(code),
        })
    }

    /// Every output of the program on `input` (at most `max_outputs`), or
    /// the first error's message. Runs here: callers go through the
    /// evaluators ([`Jq::bodies`], [`Jq::holds`], [`Jq::key`]).
    fn evaluate(&self, input: &Val, max_outputs: usize) -> Result<Vec<Val>, String> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = Vec::new();
        for out in self.filter.id.run((ctx, input.clone())) {
            match out {
                Ok(v) if outputs.len() < max_outputs => outputs.push(v),
                Ok(v) => {
                    dispose(v);
                    outputs.into_iter().for_each(dispose);
                    return Err(format!(
                        "the program gave more than {max_outputs} outputs (jq.max_outputs)"
                    ));
                }
                Err(e) => {
                    outputs.into_iter().for_each(dispose);
                    return Err(exception(e));
                }
            }
        }
        Ok(outputs)
    }

    /// Runs `then` on the program's outputs, on an evaluator thread within
    /// the jq budget; `then` makes of the values what the caller keeps (a
    /// body, a key), so that no value the program built crosses back.
    fn on_evaluator<R: Send + 'static>(
        &self,
        input: &Val,
        then: impl FnOnce(Result<Vec<Val>, String>) -> R + Send + 'static,
    ) -> Result<R, String> {
        let max = budget().max_outputs;
        if self.inline {
            return Ok(then(self.evaluate(input, max)));
        }
        let (jq, input) = (self.clone(), input.clone());
        evaluators().run(move || then(jq.evaluate(&input, max)))
    }

    /// The program's outputs as request bodies: the program's error, or one
    /// body (or why it cannot be one) per output.
    pub(crate) fn bodies(&self, input: &Val) -> Result<Vec<Result<Vec<u8>, String>>, String> {
        let inline = self.inline;
        self.on_evaluator(input, move |outputs| {
            let outputs = outputs?;
            let bodies = outputs.iter().map(body).collect();
            // A bounded program's outputs nest no deeper than its input
            // and its own brackets: dropped as usual.
            if !inline {
                outputs.into_iter().for_each(dispose);
            }
            Ok(bodies)
        })?
    }

    /// Whether the program's first output is neither `false` nor `null`
    /// (no output: false), as jq's `select` decides.
    pub(crate) fn holds(&self, input: &Val) -> Result<bool, String> {
        self.on_evaluator(input, |outputs| {
            let outputs = outputs?;
            let holds = outputs
                .first()
                .is_some_and(|v| !matches!(v, Val::Null | Val::Bool(false)));
            outputs.into_iter().for_each(dispose);
            Ok(holds)
        })?
    }

    /// The program's first output as a key: a string as is, `null` (or no
    /// output) as none, anything else as its JSON.
    pub(crate) fn key(&self, input: &Val) -> Result<Option<String>, String> {
        self.on_evaluator(input, |outputs| {
            let outputs = outputs?;
            let key = match outputs.first() {
                None | Some(Val::Null) => Ok(None),
                Some(Val::TStr(s)) => Ok(Some(String::from_utf8_lossy(s).into_owned())),
                Some(other) => match nesting::check_value(other) {
                    Ok(()) => Ok(Some(String::from_utf8_lossy(&to_json(other)).into_owned())),
                    Err(e) => Err(format!("the key is {e}")),
                },
            };
            outputs.into_iter().for_each(dispose);
            key
        })?
    }

    /// Whether the program runs where it is asked for (`jq_bounds`).
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        self.inline
    }

    /// Every output, run here (tests).
    #[cfg(test)]
    pub(crate) fn run(&self, input: &Val) -> Result<Vec<Val>, String> {
        self.evaluate(input, usize::MAX)
    }
}

/// Parses one JSON document for a program. jaq reads strings as bytes
/// (jq 1.7's byte strings) and would carry invalid UTF-8 into a body, so
/// the value is checked first, with the reason the native preset gives.
pub(crate) fn parse(bytes: &[u8]) -> Result<Val, String> {
    if simdutf8::basic::from_utf8(bytes).is_err() {
        let at = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| 0);
        return Err(format!(
            "message value is not UTF-8 (invalid byte at position {at})"
        ));
    }
    // jaq's reader recurses per level: a deep value would overflow the
    // stack before it could say no.
    nesting::check_text(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    jaq_json::read::parse_single(bytes).map_err(|e| format!("invalid JSON: {e}"))
}

/// Drops a value a program built without recursing: dropping a
/// 100,000-deep array the usual way takes a stack frame per level.
pub(crate) fn dispose(v: Val) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            // Only a value this was the last owner of is taken apart; a
            // shared one just loses an owner.
            Val::Arr(a) => {
                if let Ok(items) = std::sync::Arc::try_unwrap(a) {
                    stack.extend(items);
                }
            }
            Val::Obj(o) => {
                if let Ok(map) = std::sync::Arc::try_unwrap(o) {
                    for (k, v) in map {
                        stack.push(k);
                        stack.push(v);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A map's output as a request body, or why it cannot be one. jaq writes
/// what JSON has no words for as it is: `NaN` and `Infinity` (`1 / 0` is
/// an error, but `1e308 * 10` is not), a number copied from the event
/// beyond a double's range (`1e999`), byte strings that are not UTF-8.
/// The target's parser would refuse the body, so the event is refused
/// here, with the reason.
pub(crate) fn body(v: &Val) -> Result<Vec<u8>, String> {
    // jaq's writer recurses per level too.
    nesting::check_value(v).map_err(|e| format!("the map's output is {e}"))?;
    let out = to_json(v);
    match strict_json(&out) {
        Ok(()) => Ok(out),
        Err(e) => Err(format!(
            "the map's output is not JSON a target can read ({e}): NaN, a number beyond a \
             double's range, or a byte string?"
        )),
    }
}

/// A value as compact JSON: written as bytes into a buffer sized for an
/// alert body (jaq's `Display` goes through `fmt` and checks UTF-8 again).
pub(crate) fn to_json(v: &Val) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    // Writing into a Vec cannot fail.
    let _ = jaq_json::write::write(&mut out, &jaq_json::write::Pp::default(), 0, v);
    out
}

/// What stopped a program, as text. `halt` and `halt_error` end the
/// program, never the process (jaq's `unwrap_valr` would call
/// `process::exit`: `halt` would stop the relay with status 0, no drain,
/// no commit, and systemd would not restart it).
fn exception(e: jaq_core::Exn<'_, Val>) -> String {
    match e.get_err() {
        Ok(e) => message(e),
        Err(e) => match e.get_halt() {
            Ok(code) => format!(
                "the program called halt (exit code {code}); a route's program cannot stop the relay"
            ),
            Err(other) => format!("the program stopped: {other:?}"),
        },
    }
}

/// A runtime error as text: the string an `error("…")` was given, without
/// quotes, or jaq's own description.
fn message(e: jaq_core::Error<Val>) -> String {
    // `error(.)` carries the whole event: a reason goes into logs and a
    // dead letter's header, so it is cut (never more than twice the limit
    // is even read).
    const MAX: usize = 2048;
    let text = match e.into_val() {
        Val::TStr(s) => String::from_utf8_lossy(&s[..s.len().min(MAX * 2)]).into_owned(),
        other if nesting::check_value(&other).is_err() => {
            dispose(other);
            "error with a value nested too deep to show".into()
        }
        other => {
            let json = to_json(&other);
            String::from_utf8_lossy(&json[..json.len().min(MAX * 2)]).into_owned()
        }
    };
    crate::truncate::truncate(&text, MAX)
}

/// `line L, column C` of `at`, a slice of `code` (or its end).
fn position(code: &str, at: &str) -> String {
    let offset = (at.as_ptr() as usize)
        .checked_sub(code.as_ptr() as usize)
        .filter(|o| *o <= code.len())
        .unwrap_or(code.len());
    let mut offset = offset;
    while !code.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Val) -> serde_json::Value {
        serde_json::from_slice(&to_json(v)).expect("JSON")
    }

    #[test]
    fn a_program_runs_with_several_outputs() {
        let jq = Jq::compile(r#"{a: .y}, {b: [.z[] | . * 2]}"#).unwrap();
        let out = jq
            .run(&parse(br#"{"y":"h\u00e9","z":[1,2]}"#).unwrap())
            .unwrap();
        let out: Vec<serde_json::Value> = out.iter().map(json).collect();
        assert_eq!(
            out,
            [
                serde_json::json!({"a": "hé"}),
                serde_json::json!({"b": [2, 4]})
            ]
        );
    }

    /// What a strict JSON reader refuses never becomes a body: jaq reads
    /// bytes that are not UTF-8, keeps a number beyond a double's range as
    /// written, and writes NaN and Infinity as words.
    #[test]
    fn a_body_is_json_a_target_can_read() {
        let err = parse(b"{\"t\":\"\xff\xfe\"}").unwrap_err();
        assert_eq!(
            err,
            "message value is not UTF-8 (invalid byte at position 6)"
        );
        let run = |program: &str, input: &[u8]| -> Result<Vec<u8>, String> {
            let out = Jq::compile(program).unwrap().run(&parse(input).unwrap())?;
            body(&out[0])
        };
        for (program, input) in [
            ("{v: .x}", br#"{"x":1e999}"#.as_slice()),
            ("{v: (.x * 10)}", br#"{"x":1e308}"#),
            ("{v: (.x * 10)}", br#"{"x":-1e308}"#),
            ("{v: ((.x * 10) - (.x * 10))}", br#"{"x":1e308}"#),
        ] {
            let err = run(program, input).unwrap_err();
            assert!(
                err.starts_with("the map's output is not JSON"),
                "{program}: {err}"
            );
        }
        assert_eq!(
            run(
                "{v: .x, e: .e}",
                br#"{"x":12345678901234567890123,"e":"\ud83d\ude00"}"#
            )
            .unwrap(),
            "{\"v\":12345678901234567890123,\"e\":\"😀\"}".as_bytes()
        );
    }

    #[test]
    fn errors_are_messages() {
        let jq = Jq::compile(r#"if .x == 1 then error("bad x: \(.x)") else .z[] end"#).unwrap();
        assert_eq!(
            jq.run(&parse(br#"{"x":1}"#).unwrap()),
            Err("bad x: 1".into())
        );
        let e = jq.run(&parse(br#"{"x":0,"z":3}"#).unwrap()).unwrap_err();
        assert!(e.contains("cannot use 3"), "{e}");
    }

    /// A program that surely ends runs here; any other on the evaluators.
    #[test]
    fn bounded_programs_run_inline() {
        assert!(
            Jq::compile(".df_fault_id // .df_event_id")
                .unwrap()
                .is_inline()
        );
        assert!(!Jq::compile("last(range(1e15))").unwrap().is_inline());
    }

    /// A route's program ends with an error, never the process.
    #[test]
    fn halt_is_an_error_of_the_program() {
        for (program, code) in [
            ("halt", 0),
            ("halt_error", 5),
            ("{a: 1} | halt_error(1)", 1),
        ] {
            let e = Jq::compile(program).unwrap().run(&Val::Null).unwrap_err();
            assert!(
                e.contains(&format!("halt (exit code {code})")),
                "{program}: {e}"
            );
            let e = Jq::compile(program).unwrap().holds(&Val::Null).unwrap_err();
            assert!(e.contains("cannot stop the relay"), "{program}: {e}");
        }
    }

    /// jaq's reader and writer recurse per level: deep JSON is refused
    /// before either sees it, in events and answers and in a map's output.
    #[test]
    fn deep_nesting_is_refused_on_the_way_in_and_out() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let e = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            "invalid JSON: nested deeper than 128 levels (at byte 128)"
        );
        let inside = format!(r#"{{"a":{deep}}}"#);
        assert!(
            parse(inside.as_bytes())
                .unwrap_err()
                .contains("deeper than 128")
        );

        let out = Jq::compile("reduce range(200) as $i (.; [.])")
            .unwrap()
            .run(&Val::Null)
            .unwrap();
        let e = body(&out[0]).unwrap_err();
        assert_eq!(
            e,
            "the map's output is nested deeper than 128 levels (in the output)"
        );
    }

    #[test]
    fn compile_errors_say_where() {
        let e = Jq::compile(".a |\n  map(").unwrap_err();
        assert!(e.starts_with("line 2, column"), "{e}");
        let e = Jq::compile(".a | nosuchfn").unwrap_err();
        assert_eq!(e, "line 1, column 6: undefined filter nosuchfn/0");
    }

    #[test]
    fn a_filter_holds_like_select() {
        let f = Jq::compile(r#".df_source == "monitor""#).unwrap();
        assert_eq!(
            f.holds(&parse(br#"{"df_source":"monitor"}"#).unwrap()),
            Ok(true)
        );
        assert_eq!(
            f.holds(&parse(br#"{"df_source":"user"}"#).unwrap()),
            Ok(false)
        );
        assert_eq!(Jq::compile("empty").unwrap().holds(&Val::Null), Ok(false));
        assert_eq!(
            Jq::compile(".a")
                .unwrap()
                .holds(&parse(br#"{"a":0}"#).unwrap()),
            Ok(true)
        );
    }
}

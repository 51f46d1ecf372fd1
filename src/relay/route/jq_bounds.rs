//! Which jq programs surely end quickly, and so may run where they are
//! asked for, without the hop to an evaluator thread (`jq_budget`) — a
//! hop that costs more than a typical key or answer rule itself.
//!
//! A program is *bounded* when it can only walk the value it is given
//! (nested at most 128 levels: `nesting`) and build values of a size
//! proportional to it: no `reduce` / `foreach`, no recursion (a local
//! `def` may call only builtins and the program's earlier, bounded
//! definitions, never itself), no generator that can run without end
//! (`range`, `repeat`, `while`, `until`, `recurse`, `limit` over them…),
//! no assignment (`.[1e9] = 1` pads an array to a billion elements) and no
//! `*` (`"x" * 1e9`). Only the builtins listed in [`BOUNDED_BUILTINS`] are
//! called. The shipped pipelines, keys and answer rules are bounded; a
//! program that is not runs on the evaluators, within `jq.timeout`.
//!
//! Erring on the side of "not bounded" costs a hop, never safety.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Pattern, Term};
use jaq_core::load::{Lexer, Parser};
use jaq_core::ops::Math;
use jaq_core::path::Part;

/// Builtins that run in time and space proportional to their input (and
/// their arguments', which are checked too).
const BOUNDED_BUILTINS: &[&str] = &[
    "not",
    "length",
    "utf8bytelength",
    "keys",
    "keys_unsorted",
    "values",
    "has",
    "in",
    "contains",
    "inside",
    "tostring",
    "tonumber",
    "type",
    "select",
    "map",
    "map_values",
    "empty",
    "error",
    "test",
    "match",
    "capture",
    "sub",
    "gsub",
    "ascii_downcase",
    "ascii_upcase",
    "ltrimstr",
    "rtrimstr",
    "trim",
    "ltrim",
    "rtrim",
    "startswith",
    "endswith",
    "split",
    "join",
    "to_entries",
    "from_entries",
    "with_entries",
    "add",
    "any",
    "all",
    "first",
    "last",
    "nth",
    "isempty",
    "nulls",
    "strings",
    "numbers",
    "booleans",
    "arrays",
    "objects",
    "iterables",
    "scalars",
    "isstring",
    "isnumber",
    "isobject",
    "isarray",
    "isboolean",
    "isnull",
    "tojson",
    "fromjson",
    "todate",
    "fromdate",
    "fromdateiso8601",
    "todateiso8601",
    "now",
    "strftime",
    "strptime",
    "mktime",
    "gmtime",
    "localtime",
    "floor",
    "ceil",
    "round",
    "fabs",
    "abs",
    "sqrt",
    "min",
    "max",
    "min_by",
    "max_by",
    "unique",
    "unique_by",
    "sort",
    "sort_by",
    "group_by",
    "reverse",
    "index",
    "rindex",
    "indices",
    "del",
    "getpath",
    "paths",
    "leaf_paths",
    "ascii",
    "explode",
    "implode",
    "isnan",
    "isinfinite",
    "isnormal",
    "infinite",
    "nan",
    "null",
    "true",
    "false",
    "tostream",
    "flatten",
    "transpose",
    "splits",
    "halt",
    "halt_error",
    "debug",
    "stderr",
    "input_line_number",
    "significand",
    "log",
    "log10",
    "log2",
    "exp",
    "exp10",
    "pow",
    "trunc",
    "isvalid",
    "ltrimstr",
    "@text",
    "@json",
    "@html",
    "@uri",
    "@csv",
    "@tsv",
    "@sh",
    "@base64",
    "@base64d",
    "toarray",
    "IN",
    "ascii",
];

/// Whether `code` surely ends quickly (see the module's doc); false when
/// it cannot be read (the compiler then says why).
pub(crate) fn bounded(code: &str) -> bool {
    let Ok(tokens) = Lexer::new(code).lex() else {
        return false;
    };
    let Ok(term) = Parser::new(&tokens).parse(|p| p.term()) else {
        return false;
    };
    Walk::default().term(&term)
}

/// What is in scope while walking: the program's bounded definitions, and
/// the filter arguments of the definition being checked.
#[derive(Default, Clone)]
struct Walk<'s> {
    defs: Vec<&'s str>,
    args: Vec<&'s str>,
}

impl<'s> Walk<'s> {
    fn term(&self, t: &Term<&'s str>) -> bool {
        match t {
            Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => true,
            Term::Str(_, parts) => parts.iter().all(|p| match p {
                StrPart::Term(t) => self.term(t),
                _ => true,
            }),
            Term::Arr(t) => t.as_deref().is_none_or(|t| self.term(t)),
            Term::Obj(pairs) => pairs
                .iter()
                .all(|(k, v)| self.term(k) && v.as_ref().is_none_or(|v| self.term(v))),
            Term::Neg(t) | Term::Label(_, t) => self.term(t),
            Term::BinOp(l, op, r) => {
                let op_ok = match op {
                    BinaryOp::Pipe(p) => p.as_ref().is_none_or(|p| self.pattern(p)),
                    BinaryOp::Comma
                    | BinaryOp::Alt
                    | BinaryOp::Or
                    | BinaryOp::And
                    | BinaryOp::Cmp(_) => true,
                    BinaryOp::Math(m) => !matches!(m, Math::Mul),
                    BinaryOp::Assign
                    | BinaryOp::Update
                    | BinaryOp::UpdateMath(_)
                    | BinaryOp::UpdateAlt => false,
                };
                op_ok && self.term(l) && self.term(r)
            }
            Term::Fold(..) => false,
            Term::TryCatch(t, c) => self.term(t) && c.as_deref().is_none_or(|c| self.term(c)),
            Term::IfThenElse(branches, otherwise) => {
                branches.iter().all(|(c, t)| self.term(c) && self.term(t))
                    && otherwise.as_deref().is_none_or(|t| self.term(t))
            }
            Term::Def(defs, body) => {
                let mut scope = self.clone();
                for d in defs {
                    // Checked with the earlier definitions in scope, not
                    // itself: a definition that calls itself is not bounded.
                    let mut inner = scope.clone();
                    inner.args.extend(d.args.iter().copied());
                    if !inner.term(&d.body) {
                        return false;
                    }
                    scope.defs.push(d.name);
                }
                scope.term(body)
            }
            Term::Call(name, args) => {
                let known = self.args.contains(name)
                    || self.defs.contains(name)
                    || BOUNDED_BUILTINS.contains(name);
                known && args.iter().all(|a| self.term(a))
            }
            Term::Path(t, path) => {
                self.term(t)
                    && path.0.iter().all(|(part, _)| match part {
                        Part::Index(i) => self.term(i),
                        Part::Range(a, b) => {
                            a.as_ref().is_none_or(|a| self.term(a))
                                && b.as_ref().is_none_or(|b| self.term(b))
                        }
                    })
            }
        }
    }

    fn pattern(&self, p: &Pattern<&'s str>) -> bool {
        match p {
            Pattern::Var(_) => true,
            Pattern::Arr(ps) => ps.iter().all(|p| self.pattern(p)),
            Pattern::Obj(kvs) => kvs.iter().all(|(k, p)| self.term(k) && self.pattern(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_surely_ends_is_bounded() {
        for p in [
            ".df_fault_id // .df_event_id",
            ".errcode == 0",
            "(.code // .StatusCode) as $c | $c == 9499 or $c == 11232",
            r#"(.error // "") | test("not match any cmdb instance")"#,
            r#"{text: "\(.df_title): \(.df_message)", n: (.a | length)}"#,
            "def f: . + 1; def g(x): x | f; g(.a)",
            include_str!("../../../examples/pipelines/guance-easyops.jq"),
            include_str!("../../../examples/pipelines/guance-feishu.jq"),
            include_str!("../../../examples/pipelines/guance-dingtalk.jq"),
            include_str!("../../../examples/pipelines/guance-wecom.jq"),
            include_str!("../../../examples/pipelines/alertmanager-easyops.jq"),
        ] {
            assert!(bounded(p), "{p}");
        }
    }

    #[test]
    fn what_may_not_end_or_may_grow_is_not() {
        for p in [
            "range(1e9)",
            "last(range(1e15))",
            "def f: f; f",
            "def f: g; def g: f; f",
            "reduce range(1e5) as $i (.; [.])",
            "reduce .[] as $x (.; [.])",
            "[limit(10; repeat(1))]",
            "recurse(. + 1)",
            r#""x" * 1e9"#,
            ".[1e9] = 1",
            ".a |= .",
            "until(false; .)",
            "[.[] | combinations]",
            "walk(.)",
            "env",
            "input",
            ".a |",
        ] {
            assert!(!bounded(p), "{p}");
        }
    }
}

//! Validation at compile time: what a condition source may be and name, checked once, when
//! a definition is registered, so that a bad condition is refused with a message rather
//! than failing at every evaluation.

use std::sync::Arc;

use super::functions::env;
use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::Context;

/// The longest condition source accepted, in bytes. Conditions are one-liners; the limit keeps
/// the parser's and the interpreter's recursion far from any stack's end.
pub const MAX_SOURCE_LEN: usize = 4096;

/// The deepest expression tree accepted: `a + b` is two levels deep, `(a + b) * c` three.
pub const MAX_DEPTH: usize = 100;

/// The name of the one variable a condition sees: the instance context.
pub(super) const CONTEXT_VAR: &str = "context";

/// Identifiers that name types rather than variables (`type(x) == int`).
pub(super) const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "duration",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "type",
    "uint",
];

/// Identifiers that are function namespaces when called on (`optional.of(1)`).
pub(super) const NAMESPACES: &[&str] = &["optional"];

/// The error for calls of functions the environment does not declare (a typo such as
/// `sise(x)`, or a Python method such as `context.keys()`): cel only finds out when it runs
/// the call, and then every evaluation would quietly count as false.
pub(super) fn unknown_functions(mut names: Vec<String>) -> String {
    names.sort_unstable();
    names.dedup();
    format!(
        "unknown function{} {}: conditions can use CEL's standard functions (size, \
         startsWith, endsWith, contains, matches, int, double, string, timestamp, ...), the \
         macros has, all, exists, exists_one, map and filter, and `get`",
        if names.len() == 1 { "" } else { "s" },
        names
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Whether the environment declares a function (global or member) of this name. cel has no
/// public query for it; declaring a context function of that name is refused exactly when
/// the environment already has one, and the probe context is thrown away.
pub(super) fn is_declared(name: &str) -> bool {
    let mut probe = Context::with_env(Arc::clone(&env().env));
    probe.add_function(name, |x: i64| x).is_err()
}

/// Checks the compiled tree: no deeper than [`MAX_DEPTH`], and no free identifier but
/// `context`, type names and the variables bound by macros. Iterative, so that it cannot
/// overflow the stack itself.
pub(super) fn check_tree(root: &IdedExpr) -> Result<(), String> {
    // (node, depth, index of the innermost scope in `scopes`)
    let mut stack: Vec<(&IdedExpr, usize, Option<usize>)> = vec![(root, 1, None)];
    // functions called that the environment does not declare
    let mut unknown: Vec<String> = Vec::new();
    // each scope: its parent and the names it binds
    let mut scopes: Vec<(Option<usize>, Vec<&str>)> = Vec::new();
    let is_bound = |scopes: &Vec<(Option<usize>, Vec<&str>)>, mut scope: Option<usize>, name| {
        while let Some(index) = scope {
            let Some((parent, names)) = scopes.get(index) else {
                return false;
            };
            if names.contains(&name) {
                return true;
            }
            scope = *parent;
        }
        false
    };
    while let Some((node, depth, scope)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(format!(
                "the expression is nested more than {MAX_DEPTH} levels deep"
            ));
        }
        let next = depth + 1;
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                let name = name.trim_start_matches('.');
                if name != CONTEXT_VAR
                    && !TYPE_NAMES.contains(&name)
                    && !is_bound(&scopes, scope, name)
                {
                    return Err(format!(
                        "unknown variable `{name}`: a condition can only refer to `{CONTEXT_VAR}`"
                    ));
                }
            }
            Expr::Call(call) => {
                let mut namespace = None;
                if let Some(target) = &call.target {
                    match &target.expr {
                        Expr::Ident(name) if NAMESPACES.contains(&name.as_str()) => {
                            namespace = Some(name.as_str());
                        }
                        _ => stack.push((target, next, scope)),
                    }
                }
                // Operators (`_==_`, `!_`, `@in`, ...) are the interpreter's own.
                let name = &call.func_name;
                if name.starts_with(|c: char| c.is_alphabetic()) {
                    let full = match namespace {
                        Some(ns) => format!("{ns}.{name}"),
                        None => name.clone(),
                    };
                    if !is_declared(&full) {
                        unknown.push(full);
                    }
                }
                stack.extend(call.args.iter().map(|arg| (arg, next, scope)));
            }
            Expr::Select(select) => stack.push((&select.operand, next, scope)),
            Expr::List(list) => stack.extend(list.elements.iter().map(|e| (e, next, scope))),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            stack.push((&e.key, next, scope));
                            stack.push((&e.value, next, scope));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, next, scope)),
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => {
                            stack.push((&e.key, next, scope));
                            stack.push((&e.value, next, scope));
                        }
                        EntryExpr::StructField(f) => stack.push((&f.value, next, scope)),
                    }
                }
            }
            Expr::Comprehension(c) => {
                stack.push((&c.iter_range, next, scope));
                stack.push((&c.accu_init, next, scope));
                let mut names = vec![c.iter_var.as_str(), c.accu_var.as_str()];
                if let Some(var) = &c.iter_var2 {
                    names.push(var.as_str());
                }
                scopes.push((scope, names));
                let inner = Some(scopes.len() - 1);
                stack.push((&c.loop_cond, next, inner));
                stack.push((&c.loop_step, next, inner));
                stack.push((&c.result, next, inner));
            }
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(unknown_functions(unknown))
    }
}

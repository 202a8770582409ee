//! The evaluation budget (see the module doc's "Evaluation budget"): the metering rewrite of
//! expressions with comprehensions, and the count of what the current evaluation spent.
//!
//! The count lives in a thread-local because cel calls the metering function as a plain
//! `fn`, with no state of ours passed in; an evaluation is synchronous and runs on one
//! thread from start to end, so the thread's count is the evaluation's.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{CelInt, CelString};
use cel::common::value::CowVal;
use cel::ExecutionError;

/// The most one evaluation may cost, in the units of the module doc's "Evaluation budget"
/// (about one expression node evaluated or one JSON value converted each). Past it the
/// evaluation is an error.
pub const MAX_EVALUATION_COST: u64 = 250_000;

/// The function the budget rewrite wraps costly operands in. A source that calls it
/// itself gains nothing: it only charges the budget and returns its argument.
pub(super) const COST_FN: &str = "__weir_cost";

/// Calls whose work grows with their operands' size, wrapped in [`COST_FN`].
pub(super) const SIZED_CALLS: &[&str] = &[
    "_==_",
    "_!=_",
    "@in",
    "_+_",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
];

/// String bytes per budget unit.
pub(super) const BYTES_PER_UNIT: usize = 64;

thread_local! {
    /// Units spent by the evaluation running on this thread (evaluation is synchronous).
    static SPENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Starts the count of a new evaluation on this thread from zero.
pub(super) fn reset_budget() {
    SPENT.with(|s| s.set(0));
}

/// Spends `units` of the current evaluation's budget; an error once it is exceeded (and
/// at every later charge of the same evaluation).
pub(super) fn charge(units: u64) -> Result<(), ExecutionError> {
    let spent = SPENT.with(|s| {
        let total = s.get().saturating_add(units);
        s.set(total);
        total
    });
    if spent > MAX_EVALUATION_COST {
        Err(over_budget())
    } else {
        Ok(())
    }
}

pub(super) fn over_budget() -> ExecutionError {
    ExecutionError::function_error(
        "budget",
        format!(
            "the evaluation went over its budget of {MAX_EVALUATION_COST} operations (a \
             comprehension over too large a list, or nested ones): the condition counts as \
             an error"
        ),
    )
}

/// Whether the current evaluation went over its budget.
pub(super) fn over() -> bool {
    SPENT.with(|s| s.get() > MAX_EVALUATION_COST)
}

/// `__weir_cost(x, weight)`: charges `1 + size(x) * weight` and returns `x` unchanged.
pub(super) fn cost_of<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let weight = match args.pop() {
        Some(w) => w.downcast_ref::<CelInt>().map_or(1, |w| *w.inner()),
        None => 1,
    };
    let Some(value) = args.pop() else {
        return Err(ExecutionError::function_error(
            COST_FN,
            "expects a value and a weight",
        ));
    };
    let size = if let Some(s) = value.downcast_ref::<CelString>() {
        s.inner().len() / BYTES_PER_UNIT
    } else if let Some(sizer) = value.as_sizer() {
        usize::try_from(*sizer.size().inner()).unwrap_or(0)
    } else {
        0
    };
    let weight = u64::try_from(weight).unwrap_or(1);
    charge((size as u64).saturating_mul(weight).saturating_add(1))?;
    Ok(value)
}

/// The expression evaluated under the budget: `root` with the iterated range of every
/// comprehension, and the operands of [`SIZED_CALLS`], wrapped in [`COST_FN`]. `None` when
/// `root` has no comprehension: then every node runs once and its cost is bounded by the
/// conversions, which are charged anyway.
pub(super) fn budgeted(root: &IdedExpr) -> Option<IdedExpr> {
    fn has_comprehension(e: &IdedExpr) -> bool {
        let mut found = false;
        visit(e, &mut |e| {
            found |= matches!(e.expr, Expr::Comprehension(_))
        });
        found
    }
    fn visit(e: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
        f(e);
        match &e.expr {
            Expr::Call(call) => {
                if let Some(t) = &call.target {
                    visit(t, f);
                }
                call.args.iter().for_each(|a| visit(a, f));
            }
            Expr::Comprehension(c) => {
                for x in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    visit(x, f);
                }
            }
            Expr::List(l) => l.elements.iter().for_each(|x| visit(x, f)),
            Expr::Map(m) => m.entries.iter().for_each(|x| visit_entry(x, f)),
            Expr::Struct(s) => s.entries.iter().for_each(|x| visit_entry(x, f)),
            Expr::Select(s) => visit(&s.operand, f),
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        }
    }
    fn visit_entry(e: &cel::common::ast::IdedEntryExpr, f: &mut impl FnMut(&IdedExpr)) {
        match &e.expr {
            EntryExpr::MapEntry(m) => {
                visit(&m.key, f);
                visit(&m.value, f);
            }
            EntryExpr::StructField(s) => visit(&s.value, f),
        }
    }
    fn nodes(e: &IdedExpr) -> i64 {
        let mut n = 0;
        visit(e, &mut |_| n += 1);
        n
    }
    /// Wraps `e` in `__weir_cost(e, weight)`.
    fn wrap(e: &mut IdedExpr, weight: i64, next_id: &mut u64) {
        // An accumulator (`@result`) and a list literal stay as they are: cel recognises
        // `@result + [x]` to build `map`/`filter` results in place.
        if matches!(&e.expr, Expr::Ident(name) if name.starts_with('@'))
            || matches!(e.expr, Expr::List(_))
        {
            return;
        }
        *next_id += 2;
        let inner = std::mem::take(e);
        let weight = IdedExpr {
            id: *next_id - 1,
            expr: Expr::Literal(cel::common::ast::LiteralValue::Int(CelInt::from(weight))),
        };
        *e = IdedExpr {
            id: *next_id,
            expr: Expr::Call(cel::common::ast::CallExpr {
                func_name: COST_FN.to_owned(),
                target: None,
                args: vec![inner, weight],
            }),
        };
    }
    fn rewrite(e: &mut IdedExpr, next_id: &mut u64) {
        match &mut e.expr {
            Expr::Call(call) => {
                if let Some(t) = &mut call.target {
                    rewrite(t, next_id);
                }
                call.args.iter_mut().for_each(|a| rewrite(a, next_id));
                if SIZED_CALLS.contains(&call.func_name.as_str()) {
                    if let Some(t) = &mut call.target {
                        wrap(t, 1, next_id);
                    }
                    call.args.iter_mut().for_each(|a| wrap(a, 1, next_id));
                }
            }
            Expr::Comprehension(c) => {
                // Each iteration evaluates the loop's condition and step: charged per item,
                // by their size before metering, up front.
                let weight = nodes(&c.loop_cond) + nodes(&c.loop_step);
                for x in [
                    &mut c.iter_range,
                    &mut c.accu_init,
                    &mut c.loop_cond,
                    &mut c.loop_step,
                    &mut c.result,
                ] {
                    rewrite(x, next_id);
                }
                wrap(&mut c.iter_range, weight, next_id);
            }
            Expr::List(l) => l.elements.iter_mut().for_each(|x| rewrite(x, next_id)),
            Expr::Map(m) => m.entries.iter_mut().for_each(|x| rewrite_entry(x, next_id)),
            Expr::Struct(s) => s.entries.iter_mut().for_each(|x| rewrite_entry(x, next_id)),
            Expr::Select(s) => rewrite(&mut s.operand, next_id),
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        }
    }
    fn rewrite_entry(e: &mut cel::common::ast::IdedEntryExpr, next_id: &mut u64) {
        match &mut e.expr {
            EntryExpr::MapEntry(m) => {
                rewrite(&mut m.key, next_id);
                rewrite(&mut m.value, next_id);
            }
            EntryExpr::StructField(s) => rewrite(&mut s.value, next_id),
        }
    }
    if !has_comprehension(root) {
        return None;
    }
    let mut max_id = 0;
    visit(root, &mut |e| max_id = max_id.max(e.id));
    let mut out = root.clone();
    rewrite(&mut out, &mut max_id);
    Some(out)
}

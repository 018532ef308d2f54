//! The aggregate functions the streaming planner maintains: a DataFusion aggregate
//! expression to the [`AggSpec`] of the incremental GROUP BY, or a refusal naming the
//! function and, where one exists, the rewrite that is maintained.

use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::expr::AggregateFunction;
use eddy_dataflow::{AggKind, AggSpec};

use super::{Planner, unsupported};
use crate::SqlResult;

impl Planner<'_> {
    pub(super) fn aggregate(
        &self,
        e: &Expr,
        schema: &DFSchema,
        output_type: arrow::datatypes::DataType,
    ) -> SqlResult<AggSpec> {
        let e = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
            return Err(unsupported(format!("aggregate expression {e}")));
        };
        let kind = match func.name() {
            "count" => AggKind::Count,
            "sum" => AggKind::Sum,
            "avg" => AggKind::Avg,
            "min" => AggKind::Min,
            "max" => AggKind::Max,
            "bool_and" => AggKind::BoolAnd,
            "bool_or" => AggKind::BoolOr,
            "var" => AggKind::Variance { sample: true },
            "var_pop" => AggKind::Variance { sample: false },
            "stddev" => AggKind::Stddev { sample: true },
            "stddev_pop" => AggKind::Stddev { sample: false },
            "string_agg" => AggKind::StringAgg,
            // Maintained exactly: the count of distinct values is within any approximation.
            "approx_distinct" => AggKind::Count,
            "array_agg" => match params.order_by.as_slice() {
                // Without an ORDER BY the order is unspecified: Eddy's is the values' own.
                [] => AggKind::ArrayAgg {
                    descending: false,
                    nulls_first: false,
                },
                [o] => AggKind::ArrayAgg {
                    descending: !o.asc,
                    nulls_first: o.nulls_first,
                },
                _ => {
                    return Err(unsupported(
                        "array_agg() ordered by several expressions (order by one, a ROW(..) \
                         of them for instance)",
                    ));
                }
            },
            name @ ("first_value" | "last_value") => {
                let [o] = params.order_by.as_slice() else {
                    return Err(unsupported(format!(
                        "{name}() as an aggregate without exactly one ORDER BY expression \
                         (write {name}(x ORDER BY t))"
                    )));
                };
                if params.distinct
                    || matches!(
                        params.null_treatment,
                        Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls)
                    )
                {
                    return Err(unsupported(format!(
                        "{name}(DISTINCT ..) or {name}(.. IGNORE NULLS) as an aggregate"
                    )));
                }
                // last_value by an order is first_value by the reversed order.
                let last = name == "last_value";
                AggKind::FirstBy {
                    descending: o.asc == last,
                    nulls_first: o.nulls_first != last,
                }
            }
            other => return Err(unsupported(format!("aggregate function {other}()"))),
        };
        let distinct = params.distinct || func.name() == "approx_distinct";
        let mut separator = String::new();
        let args = match (kind, params.args.as_slice()) {
            (AggKind::StringAgg, [value, Expr::Literal(sep, _)]) => {
                separator = match sep {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s.clone(),
                    ScalarValue::Utf8(None)
                    | ScalarValue::LargeUtf8(None)
                    | ScalarValue::Utf8View(None)
                    | ScalarValue::Null => String::new(),
                    other => other.to_string(),
                };
                std::slice::from_ref(value)
            }
            (AggKind::StringAgg, _) => {
                return Err(unsupported(
                    "string_agg() with a separator that is not a constant",
                ));
            }
            (_, args) => args,
        };
        // The values come out in ascending order: an ORDER BY on the value itself is that.
        let ordered_by_value = kind == AggKind::StringAgg
            && matches!(params.order_by.as_slice(), [o] if o.asc && Some(&o.expr) == args.first());
        let ranked = matches!(kind, AggKind::FirstBy { .. } | AggKind::ArrayAgg { .. });
        if !params.order_by.is_empty() && !ordered_by_value && !ranked {
            return Err(unsupported(format!(
                "{}(... ORDER BY ...) (string_agg(x, sep ORDER BY x) is maintained)",
                func.name()
            )));
        }
        let arg = match args {
            [] => None,
            [a] => Some(self.physical(a, schema)?),
            _ => {
                return Err(unsupported(format!(
                    "{}() with several arguments",
                    func.name()
                )));
            }
        };
        let filter = params
            .filter
            .as_ref()
            .map(|f| self.physical(f, schema))
            .transpose()?;
        if distinct
            && ranked
            && matches!(params.order_by.as_slice(), [o] if Some(&o.expr) != args.first())
        {
            return Err(unsupported(format!(
                "{}(DISTINCT x ORDER BY y): with DISTINCT the ORDER BY must be the argument",
                func.name()
            )));
        }
        let order = match (ranked, params.order_by.first()) {
            (true, Some(o)) => Some(self.physical(&o.expr, schema)?),
            // array_agg without an ORDER BY: ordered by the value itself.
            (true, None) => arg.clone(),
            _ => None,
        };
        Ok(AggSpec {
            kind,
            arg,
            distinct,
            filter,
            output_type,
            separator,
            order,
        })
    }
}

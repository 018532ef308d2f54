//! Point reads: `SELECT columns FROM relation WHERE key = value [AND ...]` answered straight
//! from the store, without a DataFusion session or plan.
//!
//! An application that reads a view by key thousands of times a second (DESIGN §1) must not
//! pay for planning a query each time: planning costs several times what the read does.
//! [`PointRead::plan`] recognizes the one shape where planning cannot change the answer — a
//! projection of plain columns of one stored relation, filtered by a conjunction of
//! `column = literal or parameter` that pins a view's leading columns or a table's whole
//! primary key — and [`PointRead::execute`] reads exactly the rows that match.
//!
//! Whenever a value's type is not exactly the column's (a fraction for an integer column, a
//! float key, a parameter of another type), the point read declines and the statement takes
//! the general path, so the two paths can only differ in speed, never in their answer. The
//! names and types of the result are those the general path gives (see `naming` in the
//! server), since a prepared statement's row description comes from the general path.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use eddy_catalog::{Relation, RelationKind, Snapshot};
use eddy_dataflow::codec::{batch_from_rows, decode_row, encode_value};
use eddy_dataflow::relations::{self, Layout};
use eddy_storage::{Store, keys};
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, ObjectName, Query, Select, SelectItem, SetExpr,
    Statement, TableFactor, UnaryOperator, Value, ValueWithSpan,
};

use crate::SqlResult;
use crate::names::{normalize_ident, normalize_object_name};

/// Rows per batch when a prefix matches many rows.
const CHUNK: usize = 8192;

/// What a key column is compared with.
#[derive(Clone, Debug, PartialEq)]
enum Operand {
    /// A literal, already of the column's type (`None`: NULL, which nothing equals).
    Value(Option<ScalarValue>),
    /// `$n`, as an index into the bound parameters.
    Param(usize),
}

/// A query that reads one stored relation by key.
#[derive(Debug)]
pub struct PointRead {
    relation: Arc<Relation>,
    /// The relation's columns the query returns, in order.
    projection: Vec<usize>,
    /// The result's schema: the projected columns under the names the query gives them.
    schema: SchemaRef,
    /// Column position -> what it must equal, sorted by position.
    bound: Vec<(usize, Operand)>,
}

impl PointRead {
    /// The point read `statement` is, if it is one.
    pub fn plan(statement: &Statement, catalog: &Snapshot) -> Option<PointRead> {
        let Statement::Query(query) = statement else {
            return None;
        };
        let select = plain_select(query)?;
        let [from] = select.from.as_slice() else {
            return None;
        };
        if !from.joins.is_empty() {
            return None;
        }
        let TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            with_ordinality: false,
            partitions,
            json_path: None,
            sample: None,
            index_hints,
        } = &from.relation
        else {
            return None;
        };
        if !with_hints.is_empty() || !partitions.is_empty() || !index_hints.is_empty() {
            return None;
        }
        if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
            return None;
        }
        let relation = catalog.get(&normalize_object_name(name).ok()?)?.clone();
        // Views stored as a log have no order to look a key up in.
        if !matches!(
            relation.kind,
            RelationKind::MaterializedView | RelationKind::Table
        ) || relation.append_only
        {
            return None;
        }
        let scope = Scope {
            relation: &relation,
            alias: alias.as_ref().map(|a| normalize_ident(&a.name)),
        };

        let mut projection = Vec::new();
        let mut fields = Vec::new();
        let schema = relation.schema();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(options) if *options == Default::default() => {
                    for (i, f) in schema.fields().iter().enumerate() {
                        projection.push(i);
                        fields.push(f.as_ref().clone().with_nullable(true));
                    }
                }
                SelectItem::UnnamedExpr(e) => {
                    let c = scope.column(e)?;
                    projection.push(c);
                    fields.push(schema.field(c).clone().with_nullable(true));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let c = scope.column(expr)?;
                    projection.push(c);
                    let field = schema.field(c).clone().with_nullable(true);
                    fields.push(field.with_name(normalize_ident(alias)));
                }
                _ => return None,
            }
        }

        let mut bound: Vec<(usize, Operand)> = Vec::new();
        let mut conjuncts = vec![select.selection.as_ref()?];
        while let Some(e) = conjuncts.pop() {
            match e {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::And,
                    right,
                } => {
                    conjuncts.push(left);
                    conjuncts.push(right);
                }
                Expr::Nested(inner) => conjuncts.push(inner),
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => {
                    let (c, operand) = match (scope.column(left), scope.column(right)) {
                        (Some(c), None) => (c, right),
                        (None, Some(c)) => (c, left),
                        _ => return None,
                    };
                    let field = schema.field(c);
                    if !exact_key_type(field.data_type()) {
                        return None;
                    }
                    bound.push((c, operand_of(operand, field)?));
                }
                _ => return None,
            }
        }
        bound.sort_by_key(|(c, _)| *c);

        // The read must be narrow: a table's whole key, a keyed view's first key column, or
        // a multiset view's first column is pinned.
        let covered = |c: usize| bound.iter().any(|(b, _)| *b == c);
        let narrow = match crate::context::layout(&relation) {
            Layout::Keyed if relation.kind == RelationKind::Table => {
                !relation.primary_key.is_empty() && relation.primary_key.iter().all(|c| covered(*c))
            }
            Layout::Keyed => relation.primary_key.first().is_some_and(|c| covered(*c)),
            _ => covered(0),
        };
        if !narrow {
            return None;
        }
        Some(PointRead {
            relation,
            projection,
            schema: Arc::new(Schema::new(fields)),
            bound,
        })
    }

    /// The result's schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Reads the matching rows at one epoch. `None`: a parameter is not of its column's
    /// type, and the general path must answer instead. Plan and read with one catalog
    /// snapshot.
    /// `pinned`: the caller holds the store's epoch already (no second hold is taken).
    pub fn execute(
        &self,
        store: &Store,
        params: &[ScalarValue],
        pinned: bool,
    ) -> SqlResult<Option<RecordBatch>> {
        let stored = self.relation.schema();
        let mut values: Vec<(usize, ScalarValue)> = Vec::with_capacity(self.bound.len());
        for (c, operand) in &self.bound {
            let value = match operand {
                Operand::Value(v) => v.clone(),
                Operand::Param(i) => match params.get(*i) {
                    Some(p) => match exact(p, stored.field(*c).data_type()) {
                        Some(v) => Some(v),
                        None if p.is_null() => None,
                        None => return Ok(None),
                    },
                    None => return Ok(None),
                },
            };
            match value {
                Some(v) => values.push((*c, v)),
                // `column = NULL` holds for no row.
                None => return Ok(Some(RecordBatch::new_empty(self.schema.clone()))),
            }
        }

        let width = stored.fields().len();
        let mut rows: Vec<Vec<ScalarValue>> = Vec::new();
        {
            let layout = crate::context::layout(&self.relation);
            // The bytes every key of a matching row starts with: the bound leading columns of
            // the key (rows stored by key) or of the row (a multiset).
            let mut prefix = keys::rows_prefix(self.relation.id);
            let key = (layout == Layout::Keyed).then_some(&self.relation.primary_key);
            let mut whole = true;
            for i in 0..key.map_or(width, |k| k.len()) {
                let c = key.map_or(i, |k| k[i]);
                match values.iter().find(|(b, _)| *b == c) {
                    Some((_, v)) => encode_value(v, &mut prefix)?,
                    None => {
                        whole = false;
                        break;
                    }
                }
            }
            if layout == Layout::Keyed && whole {
                // One key is read atomically.
                if let Some(v) = store.get(&prefix)? {
                    rows.push(decode_row(&v, width)?);
                }
            } else {
                // A scan must not see half of a commit.
                let _one_epoch = (!pinned).then(|| store.read());
                relations::scan_rows(store, &prefix, layout, width, CHUNK, |chunk| {
                    rows.append(chunk);
                    Ok(true)
                })?;
            }
        }
        rows.retain(|row| values.iter().all(|(c, v)| &row[*c] == v));
        let projected: Vec<Vec<ScalarValue>> = rows
            .into_iter()
            .map(|mut row| {
                self.projection
                    .iter()
                    .map(|c| std::mem::replace(&mut row[*c], ScalarValue::Null))
                    .collect()
            })
            .collect();
        Ok(Some(batch_from_rows(&self.schema, &projected)?))
    }
}

/// The select of a query with nothing but a projection, one relation and a filter.
fn plain_select(query: &Query) -> Option<&Select> {
    let Query {
        with: None,
        body,
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks,
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators,
    } = query
    else {
        return None;
    };
    if !locks.is_empty() || !pipe_operators.is_empty() {
        return None;
    }
    let SetExpr::Select(select) = body.as_ref() else {
        return None;
    };
    let plain = select.distinct.is_none()
        && select.top.is_none()
        && select.select_modifiers.is_none()
        && select.exclude.is_none()
        && select.into.is_none()
        && select.lateral_views.is_empty()
        && select.prewhere.is_none()
        && select.connect_by.is_empty()
        && matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
        && select.cluster_by.is_empty()
        && select.distribute_by.is_empty()
        && select.sort_by.is_empty()
        && select.having.is_none()
        && select.named_window.is_empty()
        && select.qualify.is_none()
        && select.value_table_mode.is_none();
    plain.then_some(select.as_ref())
}

/// The names by which a query's columns may refer to its one relation.
struct Scope<'a> {
    relation: &'a Relation,
    alias: Option<String>,
}

impl Scope<'_> {
    /// The relation column an expression is, if it is a bare (or qualified) column.
    fn column(&self, e: &Expr) -> Option<usize> {
        match e {
            Expr::Identifier(i) => self.relation.column_index(&normalize_ident(i)),
            Expr::CompoundIdentifier(parts) => {
                let (column, qualifier) = parts.split_last()?;
                if !self.qualifies(qualifier) {
                    return None;
                }
                self.relation.column_index(&normalize_ident(column))
            }
            Expr::Nested(inner) => self.column(inner),
            _ => None,
        }
    }

    /// Whether `t.c` (or `public.t.c`) names this relation: only by its alias if it has one,
    /// as in Postgres.
    fn qualifies(&self, qualifier: &[Ident]) -> bool {
        match &self.alias {
            Some(alias) => matches!(qualifier, [q] if &normalize_ident(q) == alias),
            None => {
                normalize_object_name(&ObjectName::from(qualifier.to_vec()))
                    .ok()
                    .as_deref()
                    == Some(self.relation.name.as_str())
            }
        }
    }
}

/// Whether equal values of a type always encode to equal bytes and compare equal exactly
/// when they are (floats: `-0.0 = 0.0`; intervals: `1 day = 24 hours`).
fn exact_key_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Utf8
            | DataType::Boolean
            | DataType::Date32
            | DataType::Timestamp(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Binary
    )
}

/// What a literal or parameter on the other side of `column =` is, for a column of `field`'s
/// type; `None` when it is something else (an expression, a cast, a fraction for an integer).
fn operand_of(e: &Expr, field: &Field) -> Option<Operand> {
    let (negative, e) = match e {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => (true, expr.as_ref()),
        e => (false, e),
    };
    let Expr::Value(ValueWithSpan { value, .. }) = e else {
        return None;
    };
    let dt = field.data_type();
    let literal = match (value, dt) {
        (Value::Placeholder(p), _) if !negative => {
            let n: usize = p.strip_prefix('$')?.parse().ok()?;
            return Some(Operand::Param(n.checked_sub(1)?));
        }
        (Value::Null, _) if !negative => return Some(Operand::Value(None)),
        (Value::Number(digits, false), DataType::Int16 | DataType::Int32 | DataType::Int64) => {
            let n: i64 = digits.parse().ok()?;
            ScalarValue::Int64(Some(if negative { n.checked_neg()? } else { n }))
        }
        (Value::SingleQuotedString(s), DataType::Utf8) if !negative => {
            ScalarValue::Utf8(Some(s.clone()))
        }
        (Value::Boolean(b), DataType::Boolean) if !negative => ScalarValue::Boolean(Some(*b)),
        _ => return None,
    };
    exact(&literal, dt).map(|v| Operand::Value(Some(v)))
}

/// `v` as a value of type `dt`, if it is one exactly (an integer that fits a narrower
/// integer type converts; nothing else does).
fn exact(v: &ScalarValue, dt: &DataType) -> Option<ScalarValue> {
    if v.is_null() {
        return None;
    }
    if &v.data_type() == dt {
        return Some(v.clone());
    }
    let integer = |t: &DataType| matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64);
    if !(integer(&v.data_type()) && integer(dt)) {
        return None;
    }
    let converted = v.cast_to(dt).ok()?;
    (converted.cast_to(&v.data_type()).ok()? == *v).then_some(converted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_catalog::{Column, SqlType};

    fn catalog() -> Snapshot {
        let column = Column::nullable;
        let columns = vec![
            column("user_id", SqlType::BigInt),
            column("n", SqlType::BigInt),
            column("score", SqlType::Double),
        ];
        let view = Relation {
            id: 7,
            query: Some("SELECT ...".into()),
            ..Relation::new("per_user", RelationKind::MaterializedView, columns)
        };
        let table = Relation {
            id: 8,
            name: "users".into(),
            kind: RelationKind::Table,
            columns: vec![
                column("id", SqlType::Int),
                column("region", SqlType::Text),
                column("name", SqlType::Text),
            ],
            primary_key: vec![0, 1],
            ..view.clone()
        };
        let stream = Relation {
            id: 9,
            name: "clicks".into(),
            kind: RelationKind::Stream,
            ..view.clone()
        };
        Snapshot::from_relations(vec![view, table, stream])
    }

    fn plan(sql: &str) -> Option<PointRead> {
        let mut stmts = crate::parser::parse(sql).unwrap();
        let crate::parser::Statement::Sql(stmt) = stmts.pop().unwrap() else {
            panic!("not SQL: {sql}")
        };
        PointRead::plan(&stmt, &catalog())
    }

    fn names(read: &PointRead) -> Vec<String> {
        read.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn recognizes_reads_by_key() {
        let read = plan("SELECT user_id, n AS count FROM per_user WHERE user_id = $1").unwrap();
        assert_eq!(read.projection, vec![0, 1]);
        assert_eq!(names(&read), vec!["user_id", "count"]);
        assert_eq!(read.bound, vec![(0, Operand::Param(0))]);

        let read =
            plan("SELECT * FROM public.per_user p WHERE 3 = p.user_id AND (n = -2)").unwrap();
        assert_eq!(names(&read), vec!["user_id", "n", "score"]);
        assert_eq!(
            read.bound,
            vec![
                (0, Operand::Value(Some(ScalarValue::Int64(Some(3))))),
                (1, Operand::Value(Some(ScalarValue::Int64(Some(-2))))),
            ]
        );

        let read = plan("SELECT name FROM users WHERE region = 'eu' AND users.id = 5").unwrap();
        assert_eq!(
            read.bound,
            vec![
                (0, Operand::Value(Some(ScalarValue::Int32(Some(5))))),
                (
                    1,
                    Operand::Value(Some(ScalarValue::Utf8(Some("eu".into()))))
                ),
            ]
        );
    }

    #[test]
    fn leaves_everything_else_to_the_planner() {
        for sql in [
            "SELECT * FROM per_user",
            "SELECT * FROM per_user WHERE n = 1",
            "SELECT * FROM per_user WHERE user_id = 1 OR n = 2",
            "SELECT * FROM per_user WHERE user_id = 1 ORDER BY n",
            "SELECT * FROM per_user WHERE user_id = 1 LIMIT 1",
            "SELECT DISTINCT n FROM per_user WHERE user_id = 1",
            "SELECT n + 1 FROM per_user WHERE user_id = 1",
            "SELECT count(*) FROM per_user WHERE user_id = 1",
            "SELECT * FROM per_user WHERE user_id = 1.5",
            "SELECT * FROM per_user WHERE user_id = '1'",
            "SELECT * FROM per_user WHERE user_id = $1::int",
            "SELECT * FROM per_user WHERE user_id = 1 AND score = 2",
            "SELECT * FROM per_user WHERE user_id > 1",
            "SELECT * FROM per_user x WHERE per_user.user_id = 1",
            "SELECT * FROM per_user WHERE user_id = 99999999999999999999",
            "SELECT * FROM users WHERE id = 1",
            "SELECT * FROM users WHERE id = 99999999999 AND region = 'x'",
            "SELECT * FROM clicks WHERE user_id = 1",
            "SELECT * FROM missing WHERE user_id = 1",
            "SELECT * FROM per_user, users WHERE user_id = 1",
            "WITH x AS (SELECT 1) SELECT * FROM per_user WHERE user_id = 1",
        ] {
            assert!(plan(sql).is_none(), "{sql}");
        }
    }

    #[test]
    fn parameters_must_be_of_their_columns_type() {
        let int8 = DataType::Int64;
        assert_eq!(
            exact(&ScalarValue::Int32(Some(4)), &int8),
            Some(ScalarValue::Int64(Some(4)))
        );
        assert_eq!(
            exact(&ScalarValue::Int64(Some(70_000)), &DataType::Int16),
            None
        );
        assert_eq!(exact(&ScalarValue::Float64(Some(4.0)), &int8), None);
        assert_eq!(exact(&ScalarValue::Utf8(Some("4".into())), &int8), None);
        assert_eq!(exact(&ScalarValue::Int64(None), &int8), None);
    }
}

//! Scalar functions made from closures over argument arrays: the shape of every catalog
//! function Eddy adds ([`function`], [`per_integer`]) and the argument conversions they share.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

type Body = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A scalar function from a closure over argument arrays.
struct Function {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Arc<Body>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.body, &other.body)
    }
}

impl Eq for Function {}

impl Hash for Function {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        Ok(ColumnarValue::Array((self.body)(&arrays, rows)?))
    }
}

/// A function taking any of `arities` arguments of any type (any number when empty).
pub fn function(
    name: &'static str,
    arities: &[usize],
    returns: DataType,
    volatility: Volatility,
    body: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    let signatures = arities
        .iter()
        .map(|&n| {
            if n == 0 {
                TypeSignature::Nullary
            } else {
                TypeSignature::Any(n)
            }
        })
        .collect();
    let signature = if arities.is_empty() {
        Signature::variadic_any(volatility)
    } else {
        Signature::one_of(signatures, volatility)
    };
    ScalarUDF::new_from_impl(Function {
        name,
        signature,
        returns,
        body: Arc::new(body),
    })
}

/// A function of one integer argument (an object id, a pid, a byte count), row by row:
/// NULL in, NULL out.
pub fn per_integer<T, A>(
    name: &'static str,
    returns: DataType,
    volatility: Volatility,
    f: impl Fn(i64) -> Option<T> + Send + Sync + 'static,
) -> ScalarUDF
where
    A: Array + FromIterator<Option<T>> + 'static,
{
    function(name, &[1], returns, volatility, move |args, _| {
        let values: A = integers(&args[0])?
            .into_iter()
            .map(|v| v.and_then(&f))
            .collect();
        Ok(Arc::new(values) as ArrayRef)
    })
}

/// A column of text for every row.
pub fn texts(rows: usize, value: impl Fn(usize) -> Option<String>) -> ArrayRef {
    Arc::new((0..rows).map(value).collect::<StringArray>())
}

/// An argument as integers (oids arrive as int4, int8 or text).
pub fn integers(a: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let cast = arrow::compute::cast(a, &DataType::Int64)?;
    Ok(cast.as_primitive::<Int64Type>().iter().collect())
}

/// An argument as text.
pub fn strings(a: &ArrayRef) -> Result<Vec<Option<String>>> {
    let cast = arrow::compute::cast(a, &DataType::Utf8)?;
    Ok(cast
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

//! Rows kept as bytes: a transaction whose rows could not be sent at its
//! checkpoint's barrier (an earlier transaction still held their locks)
//! carries them in the checkpoint, each parameter encoded for the type the
//! statement declares (PostgreSQL's binary format, `None` for NULL), and
//! they are sent as they are when it commits.

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use weir_actors::UserError;

use super::row::ToRow;

/// One row's parameters, encoded.
pub(crate) type EncodedRow = Vec<Option<Vec<u8>>>;

/// Encodes `row` for a statement whose parameters have `types`.
pub(crate) fn encode(row: &dyn ToRow, types: &[Type]) -> Result<EncodedRow, UserError> {
    let params = row.params();
    if params.len() != types.len() {
        return Err(format!(
            "row {} has {} values, and the statement takes {}",
            row.describe(),
            params.len(),
            types.len()
        )
        .into());
    }
    let mut encoded = Vec::with_capacity(params.len());
    for (value, ty) in params.into_iter().zip(types) {
        let mut buffer = BytesMut::new();
        match value
            .to_sql_checked(ty, &mut buffer)
            .map_err(|e| format!("row {}: a value cannot be a {ty}: {e}", row.describe()))?
        {
            IsNull::Yes => encoded.push(None),
            IsNull::No => encoded.push(Some(buffer.to_vec())),
        }
    }
    Ok(encoded)
}

/// A parameter already encoded: sent as it is.
#[derive(Debug)]
pub(crate) struct Encoded<'a>(pub(crate) &'a Option<Vec<u8>>);

impl ToSql for Encoded<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    /// Encoded for this statement's types already.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_for_the_statement_types_and_nulls_stay_null() {
        let row = (7i64, None::<String>, "x".to_string());
        let encoded = encode(&row, &[Type::INT8, Type::TEXT, Type::TEXT]).unwrap();
        assert_eq!(
            encoded,
            vec![Some(7i64.to_be_bytes().to_vec()), None, Some(b"x".to_vec())]
        );
        let mut out = BytesMut::new();
        assert!(matches!(
            Encoded(&encoded[0]).to_sql(&Type::INT8, &mut out),
            Ok(IsNull::No)
        ));
        assert_eq!(&out[..], &7i64.to_be_bytes());
        assert!(matches!(
            Encoded(&None).to_sql(&Type::INT8, &mut out),
            Ok(IsNull::Yes)
        ));
    }

    #[test]
    fn a_value_of_the_wrong_type_or_count_is_an_error() {
        let err = encode(&(1i32,), &[Type::TEXT]).unwrap_err();
        assert!(err.to_string().contains("cannot be a text"), "{err}");
        let err = encode(&(1i32,), &[Type::INT4, Type::INT4]).unwrap_err();
        assert!(
            err.to_string()
                .contains("has 1 values, and the statement takes 2"),
            "{err}"
        );
    }
}

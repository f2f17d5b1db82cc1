//! Rows: what a PostgreSQL sink's mapping turns a record into, the
//! parameters `$1, $2, ...` of its statement. Tuples of up to 12 `ToSql`
//! values are rows, and so is a `Vec` of boxed values for rows built at
//! run time.

use tokio_postgres::types::ToSql;

/// The parameters of one execution of a sink's statement.
///
/// ```
/// use weir::sink::postgres::ToRow;
/// let row = ("alice".to_string(), 42i64);
/// assert_eq!(row.params().len(), 2);
/// assert_eq!(row.describe(), r#"("alice", 42)"#);
/// ```
pub trait ToRow: Send + Sync + 'static {
    /// The values of `$1, $2, ...`, in order.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)>;
    /// The row as it is named in messages (a constraint it violates, say).
    fn describe(&self) -> String;
}

macro_rules! tuple_rows {
    ($(($($name:ident $index:tt),+))+) => {$(
        impl<$($name: ToSql + Send + Sync + 'static),+> ToRow for ($($name,)+) {
            fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
                vec![$(&self.$index as &(dyn ToSql + Sync)),+]
            }
            fn describe(&self) -> String {
                format!("{self:?}")
            }
        }
    )+};
}

tuple_rows! {
    (A 0)
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
    (A 0, B 1, C 2, D 3, E 4)
    (A 0, B 1, C 2, D 3, E 4, F 5)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10)
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11)
}

impl ToRow for Vec<Box<dyn ToSql + Send + Sync>> {
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.iter()
            .map(|value| value.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boxed_row_has_its_values_in_order() {
        let row: Vec<Box<dyn ToSql + Send + Sync>> =
            vec![Box::new(1i32), Box::new("x".to_string())];
        assert_eq!(row.params().len(), 2);
        assert_eq!(row.describe(), r#"[1, "x"]"#);
    }
}

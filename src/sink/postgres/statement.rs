//! The SQL of a PostgreSQL sink's built-in statements (inserts and upserts
//! into a table, identifiers quoted) and of its commit table.

/// `name` as a quoted identifier; a dotted name is a schema-qualified one
/// (`shop.orders` is `"shop"."orders"`).
pub(crate) fn quote_table(name: &str) -> String {
    name.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// `name` as one quoted identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A built-in statement: rows into `table`'s `columns`, updating the row
/// whose `key` columns conflict when there is a key (an upsert). It can
/// take many rows at once.
#[derive(Clone, Debug)]
pub(crate) struct Shape {
    pub(crate) table: String,
    pub(crate) columns: Vec<String>,
    pub(crate) key: Option<Vec<String>>,
}

/// PostgreSQL's limit on a statement's parameters.
const MAX_PARAMETERS: usize = 65_535;

/// Rows per statement of many rows, at most.
const MAX_ROWS_PER_STATEMENT: usize = 256;

impl Shape {
    /// An insert of `columns`, or an upsert when `key` is given.
    pub(crate) fn new(table: &str, columns: &[&str], key: Option<&[&str]>) -> Self {
        Shape {
            table: table.to_string(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key: key.map(|key| key.iter().map(|c| c.to_string()).collect()),
        }
    }

    /// Rows a statement of many rows takes.
    pub(crate) fn rows_per_statement(&self) -> usize {
        (MAX_PARAMETERS / self.columns.len().max(1)).min(MAX_ROWS_PER_STATEMENT)
    }

    /// The positions of the key columns among the columns (an upsert's).
    pub(crate) fn key_positions(&self) -> Option<Vec<usize>> {
        let key = self.key.as_ref()?;
        Some(
            key.iter()
                .filter_map(|k| self.columns.iter().position(|c| c == k))
                .collect(),
        )
    }

    /// The statement for `rows` rows: `INSERT INTO table (columns) VALUES
    /// ($1, ...), ($n+1, ...) [ON CONFLICT (key) DO UPDATE SET ...]`.
    pub(crate) fn sql(&self, rows: usize) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| quote(c)).collect();
        let width = self.columns.len();
        let tuples: Vec<String> = (0..rows)
            .map(|row| {
                let params: Vec<String> = (1..=width)
                    .map(|i| format!("${}", row * width + i))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote_table(&self.table),
            names.join(", "),
            tuples.join(", ")
        );
        if let Some(key) = &self.key {
            let keys: Vec<String> = key.iter().map(|c| quote(c)).collect();
            let updates: Vec<String> = self
                .columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
                .collect();
            let action = if updates.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            sql.push_str(&format!(" ON CONFLICT ({}) {action}", keys.join(", ")));
        }
        sql
    }
}

/// `INSERT INTO table (columns) VALUES ($1, ...)`.
#[cfg(test)]
fn insert(table: &str, columns: &[&str]) -> String {
    Shape::new(table, columns, None).sql(1)
}

/// An insert that updates the row whose `key` columns conflict: every other
/// column takes the new value (`DO NOTHING` when every column is a key).
#[cfg(test)]
fn upsert(table: &str, columns: &[&str], key: &[&str]) -> String {
    Shape::new(table, columns, Some(key)).sql(1)
}

/// Creates the commit table (one marker row per committed transaction).
pub(crate) fn create_commit_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\
         sink text NOT NULL, subtask integer NOT NULL, checkpoint bigint NOT NULL, \
         lineage text NOT NULL, job text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
         PRIMARY KEY (sink, subtask, checkpoint))",
        quote_table(table)
    )
}

/// The marker a transaction writes: `$1` sink, `$2` subtask, `$3` checkpoint,
/// `$4` lineage, `$5` job.
pub(crate) fn insert_marker(table: &str) -> String {
    format!(
        "INSERT INTO {} (sink, subtask, checkpoint, lineage, job) VALUES ($1, $2, $3, $4, $5)",
        quote_table(table)
    )
}

/// Whether a transaction committed: `$1` sink, `$2` subtask, `$3`
/// checkpoint. A subtask commits its transactions in checkpoint order and a
/// commit prunes the markers before its own, so a marker at or after the
/// checkpoint says so.
pub(crate) fn find_marker(table: &str) -> String {
    format!(
        "SELECT 1 FROM {} WHERE sink = $1 AND subtask = $2 AND checkpoint >= $3 LIMIT 1",
        quote_table(table)
    )
}

/// Removes a subtask's markers older than `$3` (the latest stays: the ledger).
pub(crate) fn prune_markers(table: &str) -> String {
    format!(
        "DELETE FROM {} WHERE sink = $1 AND subtask = $2 AND checkpoint < $3",
        quote_table(table)
    )
}

/// The latest marker of each subtask of sink `$1`.
pub(crate) fn latest_markers(table: &str) -> String {
    format!(
        "SELECT DISTINCT ON (subtask) subtask, checkpoint, lineage, job FROM {} \
         WHERE sink = $1 ORDER BY subtask, checkpoint DESC",
        quote_table(table)
    )
}

/// Forgets sink `$1`'s markers.
pub(crate) fn delete_markers(table: &str) -> String {
    format!("DELETE FROM {} WHERE sink = $1", quote_table(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_upserts_quote_their_identifiers() {
        assert_eq!(
            insert("shop.orders", &["id", "total"]),
            r#"INSERT INTO "shop"."orders" ("id", "total") VALUES ($1, $2)"#
        );
        assert_eq!(
            upsert("totals", &["customer", "total", "n"], &["customer"]),
            r#"INSERT INTO "totals" ("customer", "total", "n") VALUES ($1, $2, $3) ON CONFLICT ("customer") DO UPDATE SET "total" = EXCLUDED."total", "n" = EXCLUDED."n""#
        );
        assert_eq!(
            upsert("seen", &["id"], &["id"]),
            r#"INSERT INTO "seen" ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(quote(r#"a"b"#), r#""a""b""#);
    }

    #[test]
    fn a_statement_of_many_rows_numbers_its_parameters_row_by_row() {
        let shape = Shape::new("t", &["a", "b"], Some(&["a"]));
        assert_eq!(
            shape.sql(2),
            r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4) ON CONFLICT ("a") DO UPDATE SET "b" = EXCLUDED."b""#
        );
        assert_eq!(shape.key_positions(), Some(vec![0]));
        assert_eq!(Shape::new("t", &["a"], None).key_positions(), None);
        assert_eq!(shape.rows_per_statement(), 256);
        let wide: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
        assert_eq!(Shape::new("t", &wide, None).rows_per_statement(), 65);
    }
}

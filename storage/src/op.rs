//! One staged write to a table of the database, as a batch collects them and the store
//! commits them.

use crate::tables::Table;

pub(crate) enum Op {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
}

impl Op {
    /// The table written.
    pub(crate) fn table(&self) -> Table {
        match self {
            Op::Put(table, ..) | Op::Delete(table, _) => *table,
        }
    }
}

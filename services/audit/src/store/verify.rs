//! Verifying the chain: recompute every hash from the first record on, one page at a time.
//!
//! What it proves: every stored record is unchanged since it was appended and none is missing
//! between the first and the last. What it cannot prove on its own: that records were not cut off
//! the end, or that the whole log was not rewritten consistently by someone able to rewrite every
//! row; for that, keep the last head hash (`hash` of the newest record) somewhere else and compare
//! (docs/services/audit.md).

use keel_clients::ChainReport;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _};

use super::AuditStore;
use crate::AuditError;
use crate::chain::{self, GENESIS_HASH};
use crate::entity::{self, Column, Entity};

/// Where the walk along the chain stands.
struct Walk {
    checked: u64,
    expected_sequence: i64,
    previous_hash: String,
}

impl Walk {
    /// Checks the next stored row; `Err` is the report of the first break.
    fn step(&mut self, row: &entity::Model) -> Result<(), ChainReport> {
        self.checked += 1;
        if row.sequence != self.expected_sequence {
            return Err(self.broken(
                self.expected_sequence,
                format!(
                    "record {} is missing: the next stored record is {}",
                    self.expected_sequence, row.sequence
                ),
            ));
        }
        if row.previous_hash != self.previous_hash {
            return Err(self.broken(
                row.sequence,
                format!(
                    "record {}'s previous_hash does not match the hash of the record before it",
                    row.sequence
                ),
            ));
        }
        if chain::hash(&self.previous_hash, row) != row.hash {
            return Err(self.broken(
                row.sequence,
                format!(
                    "record {}'s contents do not match its hash: it was changed after it was stored",
                    row.sequence
                ),
            ));
        }
        self.expected_sequence += 1;
        self.previous_hash.clone_from(&row.hash);
        Ok(())
    }

    fn broken(&self, sequence: i64, detail: String) -> ChainReport {
        ChainReport {
            intact: false,
            records_checked: self.checked,
            first_broken_sequence: u64::try_from(sequence).ok(),
            detail,
        }
    }
}

impl AuditStore {
    /// Walks the whole chain in pages of `verify_page_size` records and reports the first break.
    pub(crate) async fn verify_chain(&self) -> Result<ChainReport, AuditError> {
        let mut walk = Walk {
            checked: 0,
            expected_sequence: 1,
            previous_hash: GENESIS_HASH.to_owned(),
        };
        let mut after = 0_i64;
        loop {
            let page = Entity::find()
                .filter(Column::Sequence.gt(after))
                .order_by_asc(Column::Sequence)
                .limit(self.verify_page_size)
                .all(self.connection())
                .await?;
            let Some(last) = page.last() else { break };
            after = last.sequence;
            // Hashing a page (up to 10,000 records, tens of milliseconds) runs off the async
            // runtime, which in the all-in-one process serves every service's requests.
            let (walked, outcome) = tokio::task::spawn_blocking(move || {
                let outcome = page.iter().try_for_each(|row| walk.step(row));
                (walk, outcome)
            })
            .await
            .map_err(|e| AuditError::Store(format!("chain verification task: {e}")))?;
            if let Err(report) = outcome {
                return Ok(report);
            }
            walk = walked;
        }
        let detail = match walk.checked {
            0 => "the log is empty".to_owned(),
            n => format!("{n} records verified; head hash {}", walk.previous_hash),
        };
        Ok(ChainReport {
            intact: true,
            records_checked: walk.checked,
            first_broken_sequence: None,
            detail,
        })
    }
}

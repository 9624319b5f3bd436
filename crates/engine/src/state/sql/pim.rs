//! The contacts / calendars part of the store (schema version 5): `pim_collections` and
//! `pim_items`, on either backend through the same queries.

use super::{SqlStore, add_count, i64_to_u64};
use crate::error::Result;
use crate::state::now_ms;
use crate::state::{
    ItemStatus, MailboxId, PimCollectionCounts, PimCollectionId, PimCollectionRow, PimItemRow,
    RunId, StatusCounts,
};

type CollectionTuple = (i64, String, String, String, String, Option<String>);
/// A collection row with its mailbox first.
type MailboxCollectionTuple = (i64, i64, String, String, String, String, Option<String>);

fn collection_of(t: CollectionTuple) -> PimCollectionRow {
    let (id, kind, source_href, display_name, target_name, sync_token) = t;
    PimCollectionRow {
        id: PimCollectionId(id),
        kind,
        source_href,
        display_name,
        target_name,
        sync_token,
    }
}

impl SqlStore {
    pub(super) async fn pim_upsert_collection(
        &self,
        mailbox: MailboxId,
        c: &PimCollectionRow,
    ) -> Result<PimCollectionId> {
        let op = "record a contacts or calendar collection";
        let (_w, mut tx) = self.write_tx(op).await?;
        let id: i64 = sqlx::query_scalar(self.q("INSERT INTO pim_collections
                 (mailbox_id, kind, source_href, display_name, target_name, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (mailbox_id, source_href) DO UPDATE SET
               kind = excluded.kind, display_name = excluded.display_name,
               target_name = excluded.target_name, updated_at = excluded.updated_at
             RETURNING id"))
        .bind(mailbox.0)
        .bind(&c.kind)
        .bind(&c.source_href)
        .bind(&c.display_name)
        .bind(&c.target_name)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(op, &e))?;
        tx.commit().await.map_err(|e| self.err(op, &e))?;
        Ok(PimCollectionId(id))
    }

    pub(super) async fn pim_collections_of(
        &self,
        mailbox: MailboxId,
    ) -> Result<Vec<PimCollectionRow>> {
        let rows: Vec<CollectionTuple> = sqlx::query_as(self.q(
            "SELECT id, kind, source_href, display_name, target_name, sync_cursor
               FROM pim_collections WHERE mailbox_id = ? ORDER BY id",
        ))
        .bind(mailbox.0)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("read contacts and calendar collections", &e))?;
        Ok(rows.into_iter().map(collection_of).collect())
    }

    pub(super) async fn pim_set_sync_token(
        &self,
        collection: PimCollectionId,
        token: Option<&str>,
    ) -> Result<()> {
        let op = "store a collection's sync token";
        let (_w, mut tx) = self.write_tx(op).await?;
        sqlx::query(
            self.q("UPDATE pim_collections SET sync_cursor = ?, updated_at = ? WHERE id = ?"),
        )
        .bind(token)
        .bind(now_ms())
        .bind(collection.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(op, &e))?;
        tx.commit().await.map_err(|e| self.err(op, &e))?;
        Ok(())
    }

    pub(super) async fn pim_items_of(
        &self,
        collection: PimCollectionId,
    ) -> Result<Vec<PimItemRow>> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(self.q(
            "SELECT item_key, etag, fingerprint, summary, target_id, old_target_id, status,
                    reason, not_carried
               FROM pim_items WHERE collection_id = ? ORDER BY id",
        ))
        .bind(collection.0)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err("read contacts and events", &e))?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    key,
                    etag,
                    fingerprint,
                    summary,
                    target_id,
                    old_target_id,
                    status,
                    reason,
                    nc,
                )| {
                    PimItemRow {
                        key,
                        etag,
                        fingerprint,
                        summary: summary.unwrap_or_default(),
                        target_id,
                        old_target_id,
                        status: ItemStatus::parse(&status).unwrap_or(ItemStatus::Planned),
                        reason,
                        not_carried: nc
                            .and_then(|t| serde_json::from_str(&t).ok())
                            .unwrap_or_default(),
                    }
                },
            )
            .collect())
    }

    pub(super) async fn pim_record_item(
        &self,
        run: RunId,
        collection: PimCollectionId,
        item: &PimItemRow,
    ) -> Result<()> {
        let op = "record a contact or event";
        let not_carried = if item.not_carried.is_empty() {
            None
        } else {
            serde_json::to_string(&item.not_carried).ok()
        };
        let now = now_ms();
        let (_w, mut tx) = self.write_tx(op).await?;
        sqlx::query(self.q(
            "INSERT INTO pim_items (collection_id, item_key, etag, fingerprint, summary,
                 target_id, old_target_id, status, reason, not_carried, run_id, created_at,
                 updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (collection_id, item_key) DO UPDATE SET
               etag = excluded.etag, fingerprint = excluded.fingerprint,
               summary = excluded.summary, target_id = excluded.target_id,
               old_target_id = excluded.old_target_id, status = excluded.status,
               reason = excluded.reason, not_carried = excluded.not_carried,
               run_id = excluded.run_id, updated_at = excluded.updated_at",
        ))
        .bind(collection.0)
        .bind(&item.key)
        .bind(&item.etag)
        .bind(&item.fingerprint)
        .bind(&item.summary)
        .bind(&item.target_id)
        .bind(&item.old_target_id)
        .bind(item.status.as_str())
        .bind(&item.reason)
        .bind(not_carried)
        .bind(run.0)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(op, &e))?;
        tx.commit().await.map_err(|e| self.err(op, &e))?;
        Ok(())
    }

    pub(super) async fn pim_counts_of(
        &self,
        mailbox: Option<MailboxId>,
    ) -> Result<Vec<PimCollectionCounts>> {
        let op = "count contacts and events";
        let rows: Vec<MailboxCollectionTuple> =
            sqlx::query_as(self.q(
                "SELECT mailbox_id, id, kind, source_href, display_name, target_name, sync_cursor
                   FROM pim_collections WHERE (? IS NULL OR mailbox_id = ?) ORDER BY mailbox_id, id",
            ))
            .bind(mailbox.map(|m| m.0))
            .bind(mailbox.map(|m| m.0))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(op, &e))?;
        let counts: Vec<(i64, String, i64, i64)> = sqlx::query_as(self.q(
            "SELECT i.collection_id, i.status, COUNT(*),
                    CAST(COALESCE(SUM(CASE WHEN i.not_carried IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT)
               FROM pim_items i JOIN pim_collections c ON c.id = i.collection_id
              WHERE (? IS NULL OR c.mailbox_id = ?)
              GROUP BY i.collection_id, i.status",
        ))
        .bind(mailbox.map(|m| m.0))
        .bind(mailbox.map(|m| m.0))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(op, &e))?;
        Ok(rows
            .into_iter()
            .map(|(m, id, kind, href, name, target, token)| {
                let mut c = StatusCounts::default();
                let mut with_not_carried = 0;
                for (_, status, n, nc) in counts.iter().filter(|r| r.0 == id) {
                    add_count(&mut c, status, *n, 0);
                    with_not_carried += i64_to_u64(*nc);
                }
                PimCollectionCounts {
                    mailbox: MailboxId(m),
                    collection: collection_of((id, kind, href, name, target, token)),
                    counts: c,
                    with_not_carried,
                }
            })
            .collect())
    }
}

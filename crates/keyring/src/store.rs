//! Sealed secrets in PostgreSQL: bringing a column up to the current KEK.

use sqlx::PgPool;

use crate::{Binding, Keyring};

/// Seals every value of `table.column` that the current KEK did not seal:
/// plaintext an earlier version stored, or what an older KEK sealed (a
/// rewrap). Each row is bound to `purpose` and its `id_column`. One
/// transaction with the rows locked, so replicas starting together do it
/// once; returns how many rows changed. The names are the caller's
/// constants, never input.
pub async fn reseal_column(
    pool: &PgPool,
    keyring: &Keyring,
    purpose: &str,
    table: &str,
    id_column: &str,
    column: &str,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
        "SELECT {id_column}::text, {column} FROM {table} ORDER BY 1 FOR UPDATE"
    ))
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = 0;
    for (id, stored) in rows {
        let binding = Binding {
            purpose,
            resource: &id,
        };
        let resealed = keyring
            .reseal(binding, &stored)
            .await
            .map_err(|e| anyhow::anyhow!("{table} {id}: {e}"))?;
        if let Some(sealed) = resealed {
            sqlx::query(&format!(
                "UPDATE {table} SET {column} = $2 WHERE {id_column}::text = $1"
            ))
            .bind(&id)
            .bind(sealed)
            .execute(&mut *tx)
            .await?;
            changed += 1;
        }
    }
    tx.commit().await?;
    if changed > 0 {
        tracing::info!(
            table,
            rows = changed,
            kek = keyring.current_id(),
            "sealed stored secrets with the current key-encryption key"
        );
    }
    Ok(changed)
}

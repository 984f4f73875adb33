-- Private signing keys are stored sealed with a key-encryption key the
-- database does not hold (foundry-keyring's envelope, which starts 'FKR1').
-- Keys an earlier version stored in plaintext are sealed by the service on
-- its next start (it holds the key-encryption key; a migration cannot), so
-- the rule holds for every row written from now on.
ALTER TABLE signing_keys
    ADD CONSTRAINT signing_keys_private_key_sealed
    CHECK (substring(private_key FROM 1 FOR 4) = 'FKR1'::bytea) NOT VALID;

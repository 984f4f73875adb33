-- Private signing keys are stored sealed with a key-encryption key the
-- database does not hold (foundry-keyring's envelope, which starts 'FKR1').
-- The service seals a plaintext key of an earlier version, and rewraps one
-- sealed by an older key-encryption key, on start: that one column is the
-- only thing of a signing key its role may change.
GRANT UPDATE (private_key) ON signing_keys TO foundry_audit;
ALTER TABLE signing_keys
    ADD CONSTRAINT signing_keys_private_key_sealed
    CHECK (substring(private_key FROM 1 FOR 4) = 'FKR1'::bytea) NOT VALID;

-- One pending invitation per email and organization: a second invite of the
-- same address is ALREADY_EXISTS (resend the first instead).
CREATE UNIQUE INDEX invitations_pending_email_key ON invitations (org_id, lower(email)) WHERE state = 'pending';

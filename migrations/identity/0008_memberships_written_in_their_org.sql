-- A user-scoped transaction (app.user_id alone: listing the user's
-- organizations, their sessions) reads its user's memberships in every
-- organization but writes none: before, its check let a user insert their
-- own membership, as owner, into any organization, or raise their own role.
-- Memberships are written as their organization's tenant (a new
-- organization's owner, a member's role) or under system scope (an accepted
-- invitation).
DROP POLICY tenant ON memberships;
CREATE POLICY tenant ON memberships
    USING (org_id = current_org() OR system_scope() OR user_id = current_app_user())
    WITH CHECK (org_id = current_org() OR system_scope());

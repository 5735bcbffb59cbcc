"""What a holder of the secret may do to the host: the create policy, checked on the
final engine create body (model, fields, images, host namespaces, binds, limits).

May import: ``errors`` only: the policy is pure.
"""

"""Operations that span areas: the rollback (service + state) and the post-restart watch (service +
sampling + analysis), plus the supervised simulated gateway that stages 02 and 06 replay against.
Import from the modules: ``rollback``, ``watch``.
"""

"""``driveops-env dashboard``: a live view of an environment in the browser (see :mod:`.app`), served
on 127.0.0.1 behind a random token (:mod:`.serve`)."""

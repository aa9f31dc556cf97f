"""Images derived from the configured ones, once per recipe, on an engine that builds: the stores'
initialised images (:mod:`.ready`) and an identity server's (its unit).  A recipe is a :class:`.derivation.Derivation`;
the engine runs it with one call (``Engine.derive``): nothing here, and no unit, knows the engine's API."""

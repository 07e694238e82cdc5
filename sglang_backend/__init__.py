"""SGLang side of mixguard: launch profiles, health probing and the CPU stand-in server."""

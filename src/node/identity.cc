// Placeholder until the identity module lands.

# Test-only schema for the net layer's unit tests.
@0x852b53ac9cd9fda9;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("replicator::net::test");

interface Echo {
  echo @0 (value :UInt64, text :Text) -> (value :UInt64, text :Text);
  # Answers with the arguments.

  hang @1 (viaAsio :Bool) -> ();
  # Never answers; cancellable. With viaAsio the server waits in an Asio coroutine
  # (through ToPromise), otherwise in a KJ promise.

  fail @2 (message :Text) -> ();
  # Fails with `message`.
}

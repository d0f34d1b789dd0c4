# Replicator's public wire contract.
#
# A `replicatord` node serves one bootstrap capability, `Node`, on its listen
# address (Cap'n Proto two-party RPC over TCP, in TLS 1.3 by default: the
# node and every caller present certificates of the federation's CA, and the
# client certificate's role says what it may call; plaintext and open to
# anyone only with --insecure; README.md, "Clients in other languages").
# From it a caller obtains the three faces of the node:
#
#   KeyValue   for applications (the client interface): put, get, their
#              batched forms putMany and getMany, status.
#   Peer       for other nodes: the reservation protocol (see docs/design.md).
#   Directory  for membership: served by every node.
#
# Example (any language): connect, `bootstrap()` -> Node, then
# `node.keyValue().put(key, value, requestId)` pipelined in one round trip.
#
# Limits: keys are 1..1024 bytes and values 0..1 MiB by default (node flags
# --max-key-bytes, --max-value-bytes; at most 64 KiB and 32 MiB). Outcomes are
# values (the result unions below); an RPC exception only ever means the
# transport or the node failed. A node reads messages of up to about 32 MiB
# with the default limits (more with larger ones; src/core/wire_limits.h): a
# larger message breaks the connection it came on.

@0xf78b9b9588d0c482;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("replicator::wire");

interface Node {
  keyValue @0 () -> (keyValue :KeyValue);
  peer @1 (shard :UInt32, shards :UInt32) -> (peer :Peer);
  # The peer face of engine `shard` of this node, for a caller that runs
  # `shards` engines (--shards; docs/design.md, "Shards"). Shard i of one
  # node talks only to shard i of the others. Refused (an RPC exception
  # naming both counts) unless `shards` is this node's count and `shard`
  # below it: every node of a federation runs the same count. 0 for
  # `shards` (a build without shards) means 1.
  directory @2 () -> (directory :Directory);
  echo @3 (payload :Data) -> (payload :Data);
  # Returns `payload` unchanged, touching nothing else: the cost of one call
  # on this transport, for benchmarks (replicator-bench --workload=echo).
}

# ---------------------------------------------------------------------------
# Client interface. (Named KeyValue: Cap'n Proto reserves `Client` in C++.)

interface KeyValue {
  put @0 (key :Data, value :Data, requestId :UInt64) -> (result :PutResult);
  # Stores key -> value once, at every node of every cluster.
  # `requestId`: chosen by the client, unique per (client, put); 0 means
  # none. Reserved for safe retries after a timeout (a retried put with the
  # same id answers `ok` if the first attempt was applied).

  get @1 (key :Data, consistency :Consistency) -> (result :GetResult);

  status @2 () -> (status :NodeStatus);

  changeMember @3 (change :MemberChange) -> (result :MemberChangeResult);
  # Membership: adds (promotes) or removes one voter of the peer's cluster,
  # by consensus among that cluster's current voters; this node runs it, or
  # asks a voter of the peer's cluster to. Or removes a whole cluster, by
  # consensus of the others. Answers once the new configuration is chosen,
  # or why not.

  putMany @4 (items :List(PutItem)) -> (results :List(PutResult), refused :Text);
  # Many puts in one message, to share its cost (the C++ client sends the
  # puts its callers make in one turn of its event loop this way). Each item
  # is a put of its own: checked, authorized (role write, as for `put`: a
  # caller that may not put is refused the whole call) and applied exactly
  # as `put` would, with its own requestId; results[i] answers items[i]. The
  # items are independent: no atomicity and no order among them, and one
  # invalid item fails alone. Answered when the last item is.
  # At most 1024 items (kMaxBatchCalls): a longer list is refused whole,
  # nothing applied; `results` is then empty and `refused` says why (empty
  # otherwise). An empty list answers an empty list. The message must also
  # fit the node's message limit (see the top of this file). The answer
  # carries at most 16 MiB of values: an item whose keyExists value would
  # pass that answers `answerTooLarge` instead (the put itself done as usual).

  getMany @5 (keys :List(Data), consistency :Consistency)
      -> (results :List(GetResult), refused :Text);
  # Many gets in one message, all at `consistency`: each checked and answered
  # exactly as `get` would (role read), results[i] for keys[i]; answered
  # when the last is. At most 1024 keys, as for putMany, and at most 16 MiB
  # of found values in the answer: a key whose value would pass that answers
  # `answerTooLarge`, to be asked for alone.
}

struct PutItem {
  # One put of a putMany; fields as for `put`.
  key @0 :Data;
  value @1 :Data;
  requestId @2 :UInt64;
}

struct MemberChange {
  kind @0 :Kind;
  peer @1 :Text;
  # Peer id of the node to promote or remove.
  force @2 :Bool;
  # remove: allow leaving fewer than 3 voters (a cluster that can then
  # survive no failure).
  enum Kind {
    promote @0;
    # Make a member (a learner) of the cluster a voter.
    remove @1;
    # Stop counting a voter. A removed node never votes again.
    removeCluster @2;
    # Remove the whole cluster `cluster` from the federation, by consensus
    # of the other clusters (it need not be up): no put counts it from then
    # on, and its nodes serve nothing. For a cluster that is gone for good;
    # stop its nodes first. The federation's first cluster cannot be
    # removed. `peer` and `force` are unused.
  }
  cluster @3 :Text;
  # removeCluster: the cluster's id.
}

struct MemberChangeResult {
  union {
    ok @0 :Void;
    # Chosen: `config` is the new configuration.
    invalidArgument @1 :Text;
    # Not a change that may be made: an unknown peer, a voter promoted
    # twice, a removal below 3 voters without `force`.
    busy @2 :Text;
    # Another change of the cluster is in progress or won: retry.
    unavailable @3 :Text;
    # No majority of the cluster's voters agreed in time; nothing changed,
    # or the change may still be chosen (list the members to see).
  }
  config @4 :Configuration;
  # ok: the new configuration; otherwise the newest the node knows.
}

enum Consistency {
  local @0;
  # The committed value at this node. Fast; may lag a put that just
  # finished at another node.
  linearizable @1;
  # Asks a majority of this node's cluster; any put that answered `ok`
  # before this call started is visible.
}

struct PutResult {
  union {
    ok @0 :Void;
    # Committed: durable at a majority of every cluster.
    keyExists @1 :Data;
    # The key already holds this value (committed). Choose another key.
    conflict @2 :Text;
    # A concurrent put holds a reservation on the key and kept holding it
    # past this put's retry bound. Nothing was stored; retry later or choose
    # another key. The text says which proposal held it.
    unavailable @3 :Text;
    # Too few nodes voted (a cluster below 3 voters, or a majority of some
    # cluster unreachable): nothing was stored, and the text says which
    # cluster.
    invalidArgument @4 :Text;
    # The request was malformed (empty or oversized key, oversized value).
    outcomeUnknown @5 :Text;
    # The node could not learn whether the put committed (its decision
    # could not be recorded in time, or the node shut down mid-put): it may
    # still commit. Send it again with the same requestId (it answers `ok`
    # if it was applied), or read the key before choosing another one.
    answerTooLarge @6 :Void;
    # putMany only: the put was carried out as usual, but its answer (a
    # keyExists value) would take the call's answer past 16 MiB of values
    # (kMaxBatchAnswerBytes). Send it again alone, with the same requestId,
    # for its answer.
  }
}

struct GetResult {
  union {
    found @0 :Data;
    notFound @1 :Void;
    unavailable @2 :Text;
    # Linearizable read only: no majority of the local cluster answered.
    invalidArgument @3 :Text;
    answerTooLarge @4 :Void;
    # getMany only: the value would take the call's answer past 16 MiB of
    # values (kMaxBatchAnswerBytes). Ask for this key alone.
  }
}

struct NodeStatus {
  self @0 :PeerInfo;
  members @1 :List(PeerInfo);
  # Every node this node knows, itself included, ordered by cluster, then id.
  committedKeys @2 :UInt64;
  # Keys committed at this node.
  reservations @3 :UInt64;
  # Reservations currently held at this node.
  putsOk @4 :UInt64;
  putsKeyExists @5 :UInt64;
  putsConflict @6 :UInt64;
  putsUnavailable @7 :UInt64;
  putsInvalid @8 :UInt64;
  putsOutcomeUnknown @15 :UInt64;
  # Outcomes of puts coordinated by this node since it started.
  gets @9 :UInt64;
  uptimeMs @10 :UInt64;
  safetyViolations @11 :UInt64;
  # Times this node saw two different values for one key. Must stay 0.
  storageWrites @12 :UInt64;
  # Write requests made durable since start (reservations, commits, aborts,
  # Paxos state).
  storageBatches @13 :UInt64;
  # Group commits: each made many write requests durable at once.
  storageSyncs @14 :UInt64;
  # fsyncs (0 with --storage=memory).
  putRetries @16 :UInt64;
  # Attempts retried after losing a race on their key (contention backoff).
  putsJoined @17 :UInt64;
  # Puts that arrived while the same put (key and request id) was in flight
  # here and shared its outcome; counted once, in the first put's outcome.
  catchupRounds @18 :UInt64;
  # Catch-up rounds completed (digest compared with a voter, differences pulled).
  catchupKeysPulled @19 :UInt64;
  # Committed entries this node learned from catch-up rather than a commit.
  storageMutations @20 :UInt64;
  # Mutations applied (a write request carries one or more).
  storageWriteErrors @21 :UInt64;
  # Group commits that failed; each failed every write request in it.
  storageWritesRefused @22 :UInt64;
  # Write requests refused because they would change a committed value.
  configEpoch @23 :UInt64;
  # The epoch of this node's cluster's newest configuration it knows (0:
  # none yet). Epoch 1 is the cluster's founding set; each later epoch adds
  # or removes one voter.
  configChanges @24 :UInt64;
  # Configurations this node got chosen (membership changes it proposed).
  staleEpochRefusals @25 :UInt64;
  # Peer requests this node refused because they named another epoch of
  # its cluster than its own.
  configurations @26 :List(Configuration);
  # The newest configuration of every cluster this node knows, its own
  # first.
  federationGeneration @27 :UInt64;
  # Every cluster founded up to this generation is known here and counted
  # by the puts this node coordinates (see Configuration.generation).
  federationSettled @28 :Bool;
  # This node holds every key committed before its cluster counted, and
  # answers linearizable reads (always true in the first cluster).
  generationRefusals @29 :UInt64;
  # Reserves this node refused because their coordinator did not count a
  # cluster founded since.
  insecure @30 :Bool;
  # The node runs with --insecure: plaintext, no peer or client is
  # authenticated and every face is open to anyone who can connect.
  batchedCalls @31 :UInt64;
  # putMany and getMany calls served since start (refused ones not counted).
  batchedItems @32 :UInt64;
  # Items (puts and gets) those calls carried. Each is also counted as a
  # put outcome or a get above.
  shards @33 :UInt32;
  # Engines this node runs (--shards), each over its share of the keys.
  # The counters above are their sums; `configEpoch`, `configurations` and
  # the federation fields are shard 0's (every shard changes membership
  # with the others, by its own consensus).
}

# ---------------------------------------------------------------------------
# Membership

struct PeerInfo {
  id @0 :Text;
  # Peer id: base58 of a multihash of the node's Ed25519 public key
  # ("12D3KooW..."), stable across restarts of one data dir.
  cluster @1 :Text;
  # Cluster id, 1..64 characters of [A-Za-z0-9_.-].
  address @2 :Text;
  # "HOST:PORT" where the node serves `Node`.
  state @3 :PeerState;
  stamp @4 :UInt64;
  # Orders the node's descriptions of itself: each change it makes to its
  # own entry (a restart, a new address, a new claim to vote) is stamped
  # higher than the last, and a map keeps the entry with the highest stamp.
  # 0: unstamped, superseded by any stamped entry.
}

enum PeerState {
  voter @0;
  # A voter of its cluster's newest configuration (as the node itself
  # reported it), or of the cluster's founding one.
  catchingUp @1;
  # Joined, not a voter: still pulling committed keys and waiting to be
  # added by consensus, or removed.
  down @2;
  # The node this map was read from cannot reach it (it has not registered
  # there, or stopped answering its pings). A liveness hint, local to each
  # node and never passed on: a down voter still counts in its cluster's
  # quorums.
}

struct Configuration {
  # One configuration of a cluster: the voters its quorums are counted over.
  cluster @0 :Text;
  # Cluster id, as in PeerInfo.
  epoch @1 :UInt64;
  # 1: the cluster's founding set, named once by the node that started the
  # federation. Epoch e+1 is chosen by consensus (Paxos) among epoch e's
  # voters and differs from it by exactly one voter. 0: no configuration (`voters` is empty).
  voters @2 :List(Text);
  # Peer ids, sorted bytewise, each once.
  generation @3 :UInt64;
  # The cluster's founding generation: its place in the order the
  # federation's clusters were founded (1: the first), named by the
  # directory with the founding set and the same in every epoch of the
  # cluster. 0: unknown (named before generations existed).
  removed @4 :UInt64;
  # The generation at which the cluster was removed from the federation
  # (an operator's `cluster remove`, decided by consensus of the other
  # clusters): no put counts it from then on, and its nodes serve nothing.
  # 0: not removed.
}

interface Directory {
  join @0 (self :PeerInfo, watcher :Watcher, federation :UInt64, shards :UInt32)
      -> (members :List(PeerInfo), federation :UInt64, version :UInt64,
          founding :List(Configuration));
  # Every node serves the directory: it keeps the federation's member map
  # (every node it has heard of, each entry as that node last described
  # itself, see PeerInfo.stamp) and each cluster's founding configuration
  # (epoch 1, named once by the node that started the federation and kept
  # forever), and passes both on by gossip. `join` registers (or
  # re-registers) the caller, `self`, and returns the whole map. Nodes
  # register with every member they know, so each hears of a change from
  # everyone who saw it, and keeps hearing while any one of them is up.
  # The receiver calls `watcher.changed` with its whole map whenever it
  # changes, pings the watcher every 2 s, and shows the caller `down` while
  # it does not answer (a liveness hint of the receiver's, never a
  # removal, never passed on).
  # `federation` names the federation (random, never 0): a caller of
  # another federation is refused; 0 (a node joining for the first time)
  # takes the receiver's. `version` counts the receiver's changes to its
  # map (informational). Shown states: a founding voter is `voter`; any
  # other node as it claims, `voter` when its cluster's newest
  # configuration it knows includes it, `catchingUp` otherwise (the
  # directory decides no promotion; voters are added and removed by
  # consensus, see Configuration); while a cluster has no founding set its
  # members are all `voter`.
  # `shards`: the caller's --shards (0 from a build without shards: 1).
  # Fails with an RPC exception if the caller's cluster id is malformed,
  # its id is a member of another cluster, it is of another federation, or
  # it runs another number of shards than the receiver.
  list @1 () -> (members :List(PeerInfo));
}

interface Watcher {
  changed @0 (members :List(PeerInfo), federation :UInt64, version :UInt64,
              founding :List(Configuration)) -> ();
  # The sender's whole map after a change; fields as for `join`. The
  # receiver merges it into its own (PeerInfo.stamp) and passes on what
  # was new to it.
  ping @1 () -> ();
  # Liveness: every node pings the watchers registered with it every 2 s
  # and shows a node that misses it as `down` until it answers again.
}

# ---------------------------------------------------------------------------
# Peer interface: the replication protocol. See docs/design.md for the rules.
# Spoken between nodes of one release: unlike KeyValue, it makes no
# compatibility promise before 1.0.

struct ProposalId {
  coordinator @0 :Text;
  # Peer id of the coordinator.
  incarnation @1 :UInt64;
  # Distinguishes runs of one coordinator (chosen at start, never reused).
  sequence @2 :UInt64;
  # Per-incarnation counter.
  startedMs @3 :UInt64;
  # Wall-clock milliseconds when the client's put began (first attempt).
  # Used only for backoff priority: the older put backs off less.
  epoch @4 :UInt64;
  # The configuration epoch of the coordinator's cluster the proposal was
  # made under: decision(proposal)'s acceptors are that configuration's
  # voters, forever. Fixed at creation; not part of the identity.
}

struct StoredEntry {
  value @0 :Data;
  requestId @1 :UInt64;
  # The client request id the entry was committed with (0: none).
}

struct Vote {
  peer @0 :Text;
  # The voter's peer id.
  cluster @1 :Text;
  union {
    ok @2 :Void;
    # Durably reserved for this proposal.
    stored @3 :StoredEntry;
    # The key is committed there with this value.
    reserved @4 :ProposalId;
    # Reserved for another proposal.
    unreachable @5 :Text;
    # The voter did not answer within the deadline (filled in by whoever
    # fanned out to it).
    decided @6 :Void;
    # This proposal is already decided; the voter refused to reserve.
    wrongEpoch @7 :WrongEpoch;
    # The request named another epoch of the voter's cluster than the
    # voter's own; nothing was done.
    wrongGeneration @8 :WrongGeneration;
    # The reserve was counted at a lower federation generation than the
    # voter's: its coordinator does not count a cluster founded since.
    # Nothing was done.
  }
}

struct WrongGeneration {
  generation @0 :UInt64;
  # The voter's federation generation.
  configs @1 :List(Configuration);
  # The newest configuration of every cluster founded after the request's
  # generation, for the coordinator to adopt before it retries.
}

struct WrongEpoch {
  # A refusal of a request counted under another epoch than the
  # receiver's (a vote or a read).
  epoch @0 :UInt64;
  # The receiver's epoch of its cluster (0: it knows none).
  configs @1 :List(Configuration);
  # When the receiver's epoch is newer: the configurations it knows, for
  # the sender to adopt before it retries. Empty otherwise.
}

enum Decision {
  commit @0;
  abort @1;
}

struct Ballot {
  round @0 :UInt64;
  # 0 belongs to the coordinator alone.
  proposer @1 :Text;
  # Peer id of the proposer; breaks ties between equal rounds.
}

struct PeerRequest {
  union {
    reserve @0 :Reserve;
    commit @1 :Commit;
    abort @2 :Abort;
  }
  struct Reserve {
    key @0 :Data;
    value @1 :Data;
    proposal @2 :ProposalId;
    requestId @3 :UInt64;
    epoch @4 :UInt64;
    # The epoch of the receiving node's cluster the vote is counted under;
    # a voter whose epoch differs answers `wrongEpoch`. (Commit and abort
    # carry none: a decision holds under every configuration.)
    generation @5 :UInt64;
    # The coordinator's federation generation: it counts every cluster
    # founded up to it (see docs/design.md, "New clusters").
  }
  struct Commit { key @0 :Data; value @1 :Data; proposal @2 :ProposalId; requestId @3 :UInt64; }
  # requestId: the client's id for the put (0: none), stored with the value.
  struct Abort { key @0 :Data; proposal @1 :ProposalId; }
}

struct AcceptResult {
  union {
    accepted @0 :Void;
    rejected @1 :Ballot;
    # Promised to this higher ballot.
  }
  decided @2 :Bool;
  # The acceptor has the proposal's key committed by the proposal: commit
  # was chosen, and it keeps no record of the register. With `accepted`
  # for an accept of commit; with `rejected` (naming the accept's own
  # ballot) for an accept of abort.
}

struct PrepareResult {
  union {
    promised @0 :Accepted;
    rejected @1 :Ballot;
  }
  decided @2 :Bool;
  # With `promised`: the acceptor has the proposal's key committed by the
  # proposal, so commit was chosen, and it keeps no record of the register
  # (it answers an accepted commit at ballot 0, which a proposer that does
  # not read this field adopts).

  struct Accepted {
    union {
      none @0 :Void;
      value @1 :AcceptedValue;
    }
  }
  struct AcceptedValue { ballot @0 :Ballot; decision @1 :Decision; }
}

struct ReadResult {
  union {
    committed @0 :Data;
    reserved @1 :ReservedEntry;
    # Held by this proposal, whose decision the node does not know yet.
    absent @2 :Void;
    wrongEpoch @3 :WrongEpoch;
    # The read named another epoch of this node's cluster; nothing was read.
    notReady @4 :Text;
    # This node's cluster was founded after others and the node has not yet
    # learned every key committed before its cluster counted; nothing was
    # read. The text says so.
  }
  struct ReservedEntry { proposal @0 :ProposalId; value @1 :Data; }
}

struct ForwardResult {
  votes @0 :List(Vote);
  # One per voter that answered (see PeerCall.forward).
  config @1 :Configuration;
  # The configuration of the representative's cluster the votes were asked
  # under. Epoch 0: the representative knows none, and `votes` is empty.
}

struct ConfigVote {
  # An acceptor's answer to configPrepare or configAccept.
  union {
    granted @0 :Granted;
    # Promised (prepare) or accepted (accept), durably.
    rejected @1 :Ballot;
    # Promised to this higher ballot.
    chosen @2 :List(Configuration);
    # The register is already decided: what the acceptor knows of the
    # cluster's configurations, the chosen one included.
    notReady @3 :Text;
    # The acceptor cannot vote yet; the text says why.
  }
  struct Granted {
    union {
      none @0 :Void;
      # An accept's answer, or a prepare's when nothing was accepted.
      accepted @1 :Accepted;
      # A prepare's answer: the highest proposal accepted for the register.
    }
  }
  struct Accepted { ballot @0 :Ballot; voters @1 :List(Text); }
}

struct ConfigLearn {
  known @0 :List(Configuration);
  # Configurations chosen: as a call, what the caller knows of them; as a
  # reply, every one the answering node knows (its cluster's whole history,
  # the newest of each other cluster it heard of).
}

struct Reservation {
  # A reservation as a voter holds it (catch-up's digest).
  key @0 :Data;
  value @1 :Data;
  proposal @2 :ProposalId;
  requestId @3 :UInt64;
  # The put's client request id (0: none).
}

interface Peer {
  call @0 (calls :List(PeerCall), from :Text) -> (replies :List(PeerReply));
  # Applies a batch of protocol calls at this node and answers them in order:
  # replies[i] answers calls[i]. A node sends every call it has for one peer
  # in one turn of its event loop as one batch, so the cost of a round trip
  # is shared by all the puts in flight. The batch is answered when its last
  # call is; a call that fails alone answers `failed`. At most 1024 calls
  # (kMaxBatchCalls): a longer batch is refused whole, nothing applied.
  # `from`: the caller's peer id. Each call is checked against it (a node
  # may only propose, relay, abort and ballot what is its own to; see
  # docs/design.md); over an authenticated connection the id the
  # connection proved is used instead.

  digest @1 () -> (buckets :List(UInt64), epoch :UInt64, reservations :List(Reservation),
                   generation :UInt64, federationSettled :Bool,
                   known :List(Configuration));
  # Catch-up: 4096 values; bucket b is the XOR of a 64-bit hash of every
  # committed (key, value) whose key hashes to b (see docs/design.md).
  # `epoch`: this node's epoch of its cluster, durable before it answered
  # (0: none). `reservations`: every reservation it held, taken at the same
  # instant as the buckets. `generation`: its federation generation, and
  # `federationSettled` whether it holds every key committed before its
  # cluster counted, both as of the reservations' instant. `known`: the
  # newest configuration of every cluster it knows.

  pull @2 (bucket :UInt32, after :Data, maxBytes :UInt32, bucketEnd :UInt32)
      -> (entries :List(CommittedEntry), complete :Bool, bucketEnd :UInt32);
  # Catch-up: committed entries of buckets [bucket, bucketEnd) in (bucket,
  # key) order, starting after key `after` of `bucket` (empty: from the
  # start), about `maxBytes` at most (at least one entry). A `bucketEnd` at
  # or below `bucket` asks for `bucket` alone. `complete` is false when more
  # of the range follow the last entry returned; the results' `bucketEnd`
  # is the end of the range served (0 from a build that serves one bucket
  # per pull).
}

struct PeerCall {
  union {
    handle @0 :PeerRequest;
    # Applies one request at this node. For `reserve` the vote is sent only
    # after the reservation is durable. `commit` and `abort` answer `ok` once
    # applied; both are idempotent and check the proposal id.
    # Reply: `vote`.

    forward @1 :Forward;
    # Representative: applies `request` at every voter of this node's
    # cluster, itself included, waiting at most `deadlineMs` (a voter that
    # misses it is an `unreachable` vote). Reply: `forward`, with a vote
    # per voter that answered: sent as soon as a majority of the cluster
    # voted `ok`, else once every voter answered or the deadline passed.

    accept @2 :Accept;
    # Paxos phase 2 on the register decision(proposal). Durable before reply.
    # Reply: `accept`.

    prepare @3 :Prepare;
    # Paxos phase 1 on decision(proposal). Durable before reply.
    # Reply: `prepare`.

    read @4 :Read;
    # This node's view of a key, for linearizable reads, counted under
    # `epoch` of this node's cluster (a node whose epoch differs answers
    # `wrongEpoch`). Reply: `read`.

    resolve @5 :ProposalId;
    # Asks a node of the proposal's coordinator cluster for decision(p): it
    # adopts a chosen decision, else runs Paxos at a higher ballot (adopting
    # the highest accepted decision, else abort) and returns the outcome.
    # Without the key, an acceptor that dropped its record cannot answer
    # (see `resolveKey`). Reply: `resolve`.

    configPrepare @6 :ConfigPrepare;
    # Membership: Paxos phase 1 on the register config(cluster, epoch),
    # whose acceptors are the voters of configuration epoch - 1. Durable
    # before reply. Reply: `configVote`.

    configAccept @7 :ConfigAccept;
    # Membership: Paxos phase 2 on config(cluster, epoch), proposing
    # `voters` as configuration `epoch`. Durable before reply.
    # Reply: `configVote`.

    configLearn @8 :ConfigLearn;
    # Membership: the configurations the caller knows. This node adopts
    # what is newer than its own and answers with what it knows, so either
    # side learns. Reply: `configLearn`.

    change @9 :MemberChange;
    # Membership: an operator's change of this node's cluster, asked by a
    # node of another cluster. Reply: `change`.

    resolveKey @10 :Resolve;
    # As `resolve`, naming the proposal's key, which the recovery's prepares
    # and accepts carry (see Prepare). What this build sends.
    # Reply: `resolve`.
  }
  struct Forward { request @0 :PeerRequest; deadlineMs @1 :UInt32; }
  struct Accept { proposal @0 :ProposalId; ballot @1 :Ballot; decision @2 :Decision; key @3 :Data; }
  # key: as for Prepare.
  struct Prepare { proposal @0 :ProposalId; ballot @1 :Ballot; key @2 :Data; }
  # key: the proposal's key. An acceptor that has it committed by the
  # proposal has dropped its record of decision(proposal) and answers from
  # the committed entry (`decided`). Without it (an older build), an
  # acceptor with no record refuses a prepare, and an accept of abort.
  struct Resolve { proposal @0 :ProposalId; key @1 :Data; }
  struct Read { key @0 :Data; epoch @1 :UInt64; }
  struct ConfigPrepare {
    cluster @0 :Text;
    epoch @1 :UInt64;
    # The configuration being chosen (>= 2).
    ballot @2 :Ballot;
    known @3 :List(Configuration);
    # What the caller knows of the cluster's configurations, for an
    # acceptor that lags to adopt first.
  }
  struct ConfigAccept {
    cluster @0 :Text;
    epoch @1 :UInt64;
    ballot @2 :Ballot;
    voters @3 :List(Text);
    # The proposed configuration `epoch`: peer ids, sorted, each once.
    known @4 :List(Configuration);
    # As for ConfigPrepare.
  }
}

struct PeerReply {
  union {
    vote @0 :Vote;
    forward @1 :ForwardResult;
    accept @2 :AcceptResult;
    prepare @3 :PrepareResult;
    read @4 :ReadResult;
    resolve @5 :ResolveResult;
    failed @6 :Text;
    # This call could not be answered (the node is shutting down, or the
    # call was malformed); the caller treats the peer as unreachable for it.
    configVote @7 :ConfigVote;
    configLearn @8 :ConfigLearn;
    change @9 :MemberChangeResult;
  }
}

struct CommittedEntry {
  key @0 :Data;
  value @1 :Data;
  requestId @2 :UInt64;
  proposal @3 :ProposalId;
  # The proposal that committed the entry (identity only: coordinator,
  # incarnation, sequence), when the server knows it; absent for an entry
  # stored before proposals were kept with it.
}

struct ResolveResult {
  union {
    decided @0 :Decision;
    unavailable @1 :Text;
    # No majority of the coordinator's cluster answered.
  }
}

#include "storage/storage.h"

namespace replicator::storage {

// Each implementation stops its GroupCommitter in its own destructor, while
// the state its writes touch still exists; nothing is left to do here.
Storage::~Storage() = default;

}  // namespace replicator::storage

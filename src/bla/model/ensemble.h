// An ensemble of E language models of one architecture, held as one
// LanguageModel whose every parameter has a leading member dimension (the
// layout of mixers/common/members.h). It is built from E solo models (each
// made under its own seed, exactly as a solo run makes it) and hands each
// member back out as a solo model for what is done per member: evaluation,
// checkpoints, exports.
#pragma once

#include "bla/model/lm.h"

#include <cstdint>
#include <vector>

namespace bla::model {

// The members a model holds (0: a solo model).
int64_t members_of(const LanguageModelImpl& model);

// Turns `ensemble` (built from the members' config) into the stack of
// `members`: each parameter becomes (E, solo shape), member e's at index e.
void stack_members(LanguageModelImpl& ensemble, const std::vector<LanguageModel>& members);

// Copies member `member` of the ensemble into `solo` (same architecture), and back.
void copy_member_out(const LanguageModelImpl& ensemble, int64_t member, LanguageModelImpl& solo);
void copy_member_in(LanguageModelImpl& ensemble, int64_t member, const LanguageModelImpl& solo);

}  // namespace bla::model

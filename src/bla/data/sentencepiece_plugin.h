// The interface between the library and its SentencePiece plugin
// (src/plugins/sentencepiece.cpp, built as libbla_sentencepiece.so beside
// libbla.so when libsentencepiece is found).
//
// Why a plugin: Debian's libsentencepiece exports the protobuf 3.14 it
// embeds, and LibTorch links the system libprotobuf (3.21); in one symbol
// scope the two collide and every program aborts before main. The library
// loads the plugin with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so SentencePiece
// binds to its own protobuf and nothing else sees it.
//
// Both sides are built by the same compiler against the same libstdc++, so
// the functions take C++ types; they never throw (errors come back in *error).
#pragma once

#include "bla/data/tokenizer.h"

#include <string>

namespace bla::data {

inline constexpr const char* kSentencepiecePluginFile = "libbla_sentencepiece.so";

// extern "C" names of the plugin's two functions.
inline constexpr const char* kSentencepieceLoadSymbol = "bla_sentencepiece_load";
inline constexpr const char* kSentencepieceTrainSymbol = "bla_sentencepiece_train";

// A new tokenizer for the model at `path`, or null with *error set (the
// message names `key` and `path`).
using SentencepieceLoadFunction = Tokenizer* (*)(const std::string& path, const std::string& key, std::string* error);
// Trains a model; false with *error set on failure.
using SentencepieceTrainFunction = bool (*)(const SentencepieceTraining& options, std::string* error);

}  // namespace bla::data

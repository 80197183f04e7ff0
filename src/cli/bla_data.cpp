// bla-data prepare --input FILES... --out DIR [--format text|jsonl|llmc|uint16] [--tokenizer byte|MODEL]
//                  [--separator LINE] [--field NAME] [--vocab-size N --end-of-document ID]
//                  [--val-fraction F] [--seed S] [--shard-tokens N] [--dtype auto|uint16|uint32]
// bla-data train-tokenizer --input FILES... --out PREFIX [--vocab-size N] [--model-type unigram|bpe|char|word]
//
// prepare tokenises text or JSONL files, or takes llm.c/nanoGPT token files
// as they are (src/bla/data/documents.h), into token shards and index.json
// (the format is described in src/bla/data/shards.h) for data.task: text, holding out
// whole documents as the validation split. train-tokenizer trains a
// SentencePiece model (builds with libsentencepiece only).
#include "bla/data/prepare.h"
#include "bla/data/tokenizer.h"

#include "cli/arguments.h"

#include <iostream>
#include <limits>

namespace {

std::string command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i == 0) arg = "bla-data";
    const bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`*?") == std::string::npos;
    std::string quoted = "'";
    for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += (i == 0 ? "" : " ") + (plain ? arg : quoted + "'");
  }
  return line;
}

void print_split(const char* name, const bla::data::SplitInfo& split) {
  std::cerr << "  " << name << ": " << split.documents << " documents, " << split.tokens << " tokens in "
            << split.shards.size() << " shard(s)\n";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string program = "bla-data";
  CLI::App app{"bla-data: prepare text for data.task: text. Runs on the CPU (needs no GPU)."};
  app.require_subcommand(1);

  bla::data::PrepareOptions prepare;
  auto* prep = app.add_subcommand("prepare", "tokenise text or JSONL files, or take token files as they are, into "
                                             "token shards with an index.json");
  prep->add_option("--input", prepare.inputs, "input files, all in --format")->required()->expected(1, -1);
  prep->add_option("--format", prepare.format.name,
                   "text (default: UTF-8 text), jsonl (one JSON object per line, its --field is a document), llmc "
                   "(llm.c/nanoGPT .bin with its 256-int32 header) or uint16 (raw uint16 ids); token files are split "
                   "into documents at --end-of-document and not tokenised again");
  prep->add_option("--field", prepare.format.field, "jsonl: the field holding a document's text (default text)");
  prep->add_option("--vocab-size", prepare.format.vocab_size,
                   "llmc, uint16: the vocabulary of the ids (GPT-2: 50257); every id is checked against it")
      ->check(bla::cli::IntegerIn(1, int64_t{1} << 32));
  prep->add_option("--end-of-document", prepare.format.end_of_document,
                   "llmc, uint16: the id that ends a document (GPT-2: 50256)")
      ->check(bla::cli::IntegerIn(0, int64_t{1} << 32));
  prep->add_option("--out", prepare.out_dir, "the folder to write (created; earlier shards in it are replaced)")
      ->required();
  prep->add_option("--tokenizer", prepare.tokenizer, "byte (default: 256 byte ids + end-of-document 256) or a SentencePiece .model file");
  prep->add_option("--separator", prepare.format.separator,
                   "a line equal to this ends a document (fortune files: %); default: one document per file");
  prep->add_option("--val-fraction", prepare.val_fraction, "share of the documents held out for validation (default 0.01)")
      ->check(bla::cli::RealIn(0, 1));
  prep->add_option("--seed", prepare.seed, "seed of the validation draw (default 0)")
      ->check(bla::cli::IntegerIn(0, std::numeric_limits<int64_t>::max()));
  prep->add_option("--shard-tokens", prepare.shard_tokens, "tokens per shard file at most (default 100000000)")
      ->check(bla::cli::IntegerIn(1, int64_t{1} << 40));
  prep->add_option("--dtype", prepare.dtype, "auto (uint16 when the vocabulary fits, else uint32), uint16 or uint32");

  bla::data::SentencepieceTraining training;
  auto* train = app.add_subcommand("train-tokenizer", "train a SentencePiece model (needs libsentencepiece)");
  train->add_option("--input", training.inputs, "text files, one sentence per line")->required()->expected(1, -1);
  train->add_option("--out", training.model_prefix, "writes PREFIX.model and PREFIX.vocab")->required();
  train->add_option("--vocab-size", training.vocab_size, "pieces in the model (default 8000)")
      ->check(bla::cli::IntegerIn(1, 1 << 20));
  train->add_option("--model-type", training.model_type, "unigram (default), bpe, char or word");

  app.footer("Exit codes: 0 done, 1 other error, 2 argument error.");
  if (int status = bla::cli::parse_arguments(app, program, argc, argv); status >= 0) return status;
  // prepare_shards and train_sentencepiece throw std::invalid_argument for bad options.
  return bla::util::run_guarded(program, {bla::util::error_kind<std::invalid_argument>(bla::util::ExitCode::kUsage)}, [&] {
    if (prep->parsed()) {
      prepare.command = command_line(argc, argv);
      const auto index = bla::data::prepare_shards(prepare);
      std::cerr << "bla-data: wrote " << prepare.out_dir << "/index.json (" << index.tokenizer_kind
                << (index.tokenizer_model.empty() ? "" : " " + index.tokenizer_model) << ", vocab " << index.vocab_size
                << ", " << index.dtype << ")\n";
      print_split("train", index.train);
      print_split("val", index.val);
    } else {
      bla::data::train_sentencepiece(training);
      std::cerr << "bla-data: wrote " << training.model_prefix << ".model and " << training.model_prefix << ".vocab\n";
    }
    return 0;
  });
}

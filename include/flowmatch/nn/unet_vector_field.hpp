#pragma once
/// \file
/// UNetVectorField: a convolutional U-Net u_theta(x, t | c) on images, with hand-written backward
/// passes (nn/detail/unet_layers.hpp), for class labels or context vectors, and classifier-free
/// guidance's "no condition". Not part of <flowmatch.hpp> (it is
/// opt-in, like io/idx.hpp): include <flowmatch/nn/unet_vector_field.hpp>.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <vector>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/thread_pool.hpp"
#include "flowmatch/core/threads.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/detail/unet_attention.hpp"
#include "flowmatch/nn/detail/unet_layers.hpp"

namespace flowmatch {

/// The shape of a UNetVectorField. Images are `channels` x `height` x `width`; a batch holds one
/// image per column, flattened channel-major then row-major (PyTorch's `x.flatten(1)` of an NCHW
/// tensor), so dim() = channels height width.
struct UNetOptions {
  Index channels = 1;                 ///< image channels (1: grey)
  Index height = 28;                  ///< image height; divisible by 2^(levels - 1)
  Index width = 28;                   ///< image width; divisible by 2^(levels - 1)
  std::vector<Index> widths{16, 32, 64};  ///< feature channels per level (levels = widths.size())
  Index blocks = 1;                   ///< residual blocks per level, on the way down and on the way up
  Index groups = 8;                   ///< GroupNorm groups; divides every width
  Index embedding = 128;              ///< width of the time (and condition) embedding
  Index frequencies = 8;              ///< Fourier features of t: sin, cos(pi 2^k t), k < frequencies
  /// Heads of a self-attention block in the middle (0: none); divides widths.back().
  Index attention = 0;
  /// Dropout probability in [0, 1) inside every residual block, in forward_train only.
  double dropout = 0.0;
};

namespace detail::unet {

template <Real S>
struct ResCache {
  Matrix<S> xhat1, s1, h1, xhat2, s2, rstd1, rstd2, film, dfilm, d_in, d_a, d_b;
  Matrix<S> mask;  // dropout: 0 or 1 / (1 - p) per entry of s2 (forward_train with dropout only)
};

/// One thread's share of a batch: its activations, their gradients and its parameter gradient.
template <Real S>
struct Part {
  Index n = 0;
  std::vector<Matrix<S>> act, dact;
  std::vector<ResCache<S>> res;
  std::vector<AttentionCache<S>> attn;
  std::vector<Rng> dropout_rng;  // one stream per image (column) of the part
  bool train = false;            // the last forward pass was forward_train (dropout applied)
  Vector<S> col, dcol, norm;  // im2col and GroupNorm scratch (grows to the largest layer's chunk, once)
  Matrix<S> fourier, z1, a1, emb, e, de, cond, tmp;
  Matrix<S> head_xhat, head_s, head_rstd, head_d;
  std::vector<Index> label;
  Vector<S> grad;
};

enum class OpKind : std::uint8_t { Stem, Res, Attention, Down, Up, Concat, Head };
struct Op {
  OpKind kind;
  int layer;  // index into convs (Stem, Down, Up, Head), blocks (Res) or attentions (Attention)
  int in0, in1, out;
};

struct ResBlock {
  Index cin = 0, cout = 0, hw = 0;
  GroupNorm gn1, gn2;
  int conv1 = -1, conv2 = -1, skip = -1;  // skip: a 1x1 conv when cin != cout
  Dense film;                             // embedding -> (scale, shift), 2 cout
};

}  // namespace detail::unet

/// A convolutional U-Net vector field u_theta(x, t | c) for images (Ronneberger et al., 2015, in
/// the form of DDPM's: residual blocks with GroupNorm and SiLU, the time embedding injected into
/// every block). Architecture, for widths w_0 .. w_{L-1} and B blocks per level:
/// - embedding: e = SiLU(Dense(SiLU(Dense(fourier(t)))) + cond(c)), E wide, where cond(c) is a
///   learned vector per class label (one more, the last, for "no condition") or
///   Dense([present c; 1 - present]) for a context vector;
/// - stem: 3x3 conv, image channels -> w_0;
/// - down: per level B residual blocks (each output kept as a skip), then a 3x3 stride-2 conv
///   (not after the last level);
/// - middle: one residual block; with options.attention = H > 0, DDPM's middle instead: residual
///   block, self-attention with H heads (nn/detail/unet_attention.hpp: x + proj(MHA(GN(x))), q, k, v
///   from one 1x1 conv, softmax over the lowest level's pixels of each image, proj starting at zero),
///   residual block;
/// - up: per level (deepest first) B residual blocks on [h; skip] (channel concatenation), then
///   nearest x2 upsampling and a 3x3 conv to the next level's width (not after level 0);
/// - head: GroupNorm, SiLU, 3x3 conv, w_0 -> image channels.
/// A residual block on x: h = conv3(SiLU(GN(x))); h = conv3(SiLU(GN(h) (1 + scale) + shift)) with
/// (scale, shift) = Dense(e) per block (FiLM); out = h + x (a 1x1 conv on x when widths differ).
/// With options.dropout = p > 0, forward_train zeroes each entry of the second SiLU's output with
/// probability p and scales the rest by 1 / (1 - p) (DDPM's place, before the second conv);
/// forward() never drops. The masks are reproducible: image j of the k-th forward_train with a
/// workspace draws from a stream seeded by (the constructor's seed, k = ws.dropout_step, j), so a
/// training run repeats at a fixed seed whatever the thread count; setting ws.dropout_step back
/// repeats a call's masks.
///
/// A TrainableConditionalField: CFMTrainer (condition dropout included), GuidedVectorFieldODE,
/// every solver and the checkpoints take it as they take ConditionalVectorField. Layout and
/// kernels: nn/detail/unet_layers.hpp (channels-last activations, im2col + Eigen GEMM). Threads:
/// a batch is split into num_threads() contiguous parts that run the whole network in parallel;
/// a part's parameter gradient is summed after the backward pass. After the first call at a
/// batch size, forward, forward_train and backward allocate nothing.
///
/// State (scope "model"): type "unet_field", the options (attention only when on, so that the
/// checkpoints of U-Nets without it are as before; dropout not: it does not change the function),
/// the condition kind and size, and a tensor per layer (convolutions in HWIO order: [3, 3, C_in,
/// C_out], or [C_in, C_out] for 1x1).
template <Real S = float>
class UNetVectorField {
 public:
  using Scalar = S;
  static constexpr std::string_view state_scope = "model";
  struct Workspace {
    std::vector<detail::unet::Part<S>> parts;
    Matrix<S> out;
    Index batch = -1;
    std::uint64_t dropout_step = 0;  // forward_train calls so far: picks the next call's dropout masks
  };

  /// kind Label (condition_size = number of classes C >= 1) or Vector (condition_size = context
  /// dimension m >= 1). Throws InvalidArgument naming the option that is out of range.
  UNetVectorField(const UNetOptions& options, ConditionKind kind, Index condition_size, std::uint64_t seed = 0)
      : opt_(options), kind_(kind), size_(condition_size), seed_(seed) {
    validate();
    build();
    parameters_.setZero(num_params_);
    gradients_.setZero(num_params_);
    initialize(seed);
  }

  Index dim() const { return opt_.channels * opt_.height * opt_.width; }
  const UNetOptions& options() const { return opt_; }
  ConditionKind condition_kind() const { return kind_; }
  Index num_classes() const { return kind_ == ConditionKind::Label ? size_ : 0; }
  Index condition_dim() const { return kind_ == ConditionKind::Vector ? size_ : 0; }
  Index empty_label() const { return num_classes(); }
  Index num_parameters() const { return num_params_; }
  Vector<S>& parameters() { return parameters_; }
  const Vector<S>& parameters() const { return parameters_; }
  Vector<S>& gradients() { return gradients_; }
  const Vector<S>& gradients() const { return gradients_; }

  /// u_theta(x, t | c) into out (dim x n).
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<S>& c, const Eigen::MatrixBase<DO>& out,
               Workspace& ws) const {
    run_forward("flowmatch::UNetVectorField::forward", x, t, c, ws, false);
    auto& o = detail::writable(out);
    require_out(o, x.cols());
    o = ws.out;
  }
  /// Forward pass keeping what backward() needs in ws, with dropout (if on); returns the output (dim x n).
  template <class DX, TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<S>& c,
                                 Workspace& ws) const {
    run_forward("flowmatch::UNetVectorField::forward_train", x, t, c, ws, true);
    ++ws.dropout_step;
    return ws.out;
  }

  /// Given dL/d(output) (dim x n) of the last forward_train: writes dL/dparameters into gradients().
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    constexpr const char* where = "flowmatch::UNetVectorField::backward";
    if (ws.batch < 0)
      detail::throw_invalid(where, "ws", "(no forward_train)", "call forward_train with this workspace first");
    detail::require_rows(where, "grad_out", grad_out.rows(), dim());
    detail::require_cols(where, "grad_out", grad_out.cols(), ws.batch);
    const Index n = ws.batch;
    const auto parts = static_cast<Index>(ws.parts.size());
    auto body = [&](Index k, int) {
      auto& p = ws.parts[static_cast<std::size_t>(k)];
      from_columns(grad_out, first_col(k, parts, n), p.n, p.dact[static_cast<std::size_t>(out_act_)]);
      backward_part(p);
    };
    detail::ThreadPool::global().run(parts, num_threads(), body);
    gradients_ = ws.parts[0].grad;
    for (Index k = 1; k < parts; ++k) gradients_ += ws.parts[static_cast<std::size_t>(k)].grad;
  }

  /// dL/dx of the last backward() (dim x n), into out.
  template <class DO>
  void input_gradient(const Workspace& ws, const Eigen::MatrixBase<DO>& out) const {
    auto& o = detail::writable(out);
    require_out(o, ws.batch);
    const auto parts = static_cast<Index>(ws.parts.size());
    for (Index k = 0; k < parts; ++k) {
      const auto& p = ws.parts[static_cast<std::size_t>(k)];
      to_columns(p.dact[0], first_col(k, parts, ws.batch), p.n, o);
    }
  }

  void save_state(StateWriter& w) const {
    w.text("type", "unet_field");
    w.text("scalar", std::is_same_v<S, float> ? "float" : "double");
    w.integers("image", {opt_.channels, opt_.height, opt_.width});
    w.integers("widths", std::vector<long long>(opt_.widths.begin(), opt_.widths.end()));
    w.integer("blocks", opt_.blocks);
    w.integer("groups", opt_.groups);
    w.integer("embedding", opt_.embedding);
    w.integer("frequencies", opt_.frequencies);
    if (opt_.attention > 0) w.integer("attention", opt_.attention);
    w.text("condition", std::string(condition_kind_name(kind_)));
    w.integer("condition_size", size_);
    for (const auto& t : tensors_) w.tensor(t.name, parameters_.data() + t.offset, t.shape);
  }
  /// Checks every setting (CheckpointMismatchError naming the first that differs) and reads every
  /// tensor before the parameters change.
  void load_state(const StateReader& r) {
    r.expect_text("type", "unet_field", "model type");
    r.expect_text("scalar", std::is_same_v<S, float> ? "float" : "double", "scalar type");
    const auto expect_ints = [&](const char* name, const std::vector<long long>& have) {
      if (r.integers(name) != have) r.fail("holds a U-Net with other '" + std::string(name) + "' than the model passed");
    };
    // attention is absent from the checkpoints of U-Nets without it (and from those written before it).
    const auto stored = [&](const char* name) -> long long {
      return std::string_view(name) == "attention" && !r.has_attribute(name) ? 0 : r.integer(name);
    };
    expect_ints("image", {opt_.channels, opt_.height, opt_.width});
    expect_ints("widths", std::vector<long long>(opt_.widths.begin(), opt_.widths.end()));
    for (auto [name, v] : {std::pair<const char*, Index>{"blocks", opt_.blocks}, {"groups", opt_.groups},
                           {"embedding", opt_.embedding}, {"frequencies", opt_.frequencies},
                           {"condition_size", size_}, {"attention", opt_.attention}})
      if (stored(name) != v)
        r.fail("holds " + std::string(name) + " = " + std::to_string(stored(name)) + ", the model passed has " +
               std::to_string(v));
    r.expect_text("condition", condition_kind_name(kind_), "condition kind");
    Vector<S> p(num_params_);
    for (const auto& t : tensors_) {
      r.read(t.name, t.shape, p.data() + t.offset);
      if (!Eigen::Map<const Vector<S>>(p.data() + t.offset, t.count).allFinite())
        r.fail("tensor '" + r.prefix() + t.name + "' holds a NaN or an infinity");
    }
    parameters_ = std::move(p);
  }

 private:
  using Conv = detail::unet::Conv;
  using ConvKind = detail::unet::ConvKind;
  using Op = detail::unet::Op;
  using OpKind = detail::unet::OpKind;
  using Part = detail::unet::Part<S>;

  struct TensorInfo {
    std::string name;
    Index offset, count;
    std::vector<std::int64_t> shape;
  };

  template <class M>
  void require_out(const M& o, Index n) const {
    detail::require_rows("flowmatch::UNetVectorField", "out", o.rows(), dim());
    detail::require_cols("flowmatch::UNetVectorField", "out", o.cols(), n);
  }

  void validate() const {
    constexpr const char* where = "flowmatch::UNetVectorField::UNetVectorField";
    if (kind_ == ConditionKind::None)
      detail::throw_invalid(where, "kind", "none", "must be ConditionKind::Label or ConditionKind::Vector");
    const auto at_least = [&](const char* name, Index v, Index min) {
      if (v < min) detail::throw_invalid(where, name, v, "must be at least " + std::to_string(min));
    };
    at_least(kind_ == ConditionKind::Label ? "num_classes" : "condition_dim", size_, 1);
    at_least("options.channels", opt_.channels, 1);
    at_least("options.height", opt_.height, 1);
    at_least("options.width", opt_.width, 1);
    at_least("options.widths.size() (levels)", static_cast<Index>(opt_.widths.size()), 1);
    at_least("options.blocks", opt_.blocks, 1);
    at_least("options.groups", opt_.groups, 1);
    at_least("options.embedding", opt_.embedding, 1);
    at_least("options.frequencies", opt_.frequencies, 1);
    at_least("options.attention", opt_.attention, 0);
    if (opt_.attention > 0 && opt_.widths.back() % opt_.attention != 0)
      detail::throw_invalid(where, "options.attention", opt_.attention,
                            "(heads) must divide the lowest level's width options.widths.back() = " +
                                std::to_string(opt_.widths.back()));
    if (!(opt_.dropout >= 0.0 && opt_.dropout < 1.0))
      detail::throw_invalid(where, "options.dropout", opt_.dropout, "must lie in [0, 1)");
    for (Index w : opt_.widths) {
      at_least("options.widths[i]", w, 1);
      if (w % opt_.groups != 0)
        detail::throw_invalid(where, "options.widths[i]", w,
                              "must be divisible by options.groups = " + std::to_string(opt_.groups));
    }
    const Index f = Index{1} << (opt_.widths.size() - 1);
    if (opt_.height % f != 0 || opt_.width % f != 0)
      detail::throw_invalid(where, "options.height x options.width",
                            std::to_string(opt_.height) + " x " + std::to_string(opt_.width),
                            "must be divisible by 2^(levels - 1) = " + std::to_string(f));
  }

  int new_act(Index c, Index hw) {
    act_shape_.push_back({c, hw});
    return static_cast<int>(act_shape_.size()) - 1;
  }
  // A convolution's parameters, named and placed in the flat vector.
  Conv make_conv(const std::string& name, Index cin, Index cout, Index h, Index w, ConvKind k) {
    Conv cv(cin, cout, h, w, k, num_params_);
    const auto ci = static_cast<std::int64_t>(cin), co = static_cast<std::int64_t>(cout);
    if (k == ConvKind::k1)
      add_tensor(name + ".weight", cin * cout, {ci, co});
    else
      add_tensor(name + ".weight", 9 * cin * cout, {3, 3, ci, co});
    add_tensor(name + ".bias", cout, {co});
    return cv;
  }
  int add_conv(const std::string& name, Index cin, Index cout, Index h, Index w, ConvKind k) {
    convs_.push_back(make_conv(name, cin, cout, h, w, k));
    return static_cast<int>(convs_.size()) - 1;
  }
  int add_attention(const std::string& name, Index c, Index h, Index w) {
    detail::unet::Attention a;
    a.c = c;
    a.hw = h * w;
    a.heads = opt_.attention;
    a.norm = add_norm(name + ".norm", c, h * w);
    a.qkv = make_conv(name + ".qkv", c, 3 * c, h, w, ConvKind::k1);
    a.proj = make_conv(name + ".proj", c, c, h, w, ConvKind::k1);
    attns_.push_back(a);
    return static_cast<int>(attns_.size()) - 1;
  }
  void add_tensor(std::string name, Index count, std::vector<std::int64_t> shape) {
    tensors_.push_back({std::move(name), num_params_, count, std::move(shape)});
    num_params_ += count;
  }
  detail::unet::GroupNorm add_norm(const std::string& name, Index c, Index hw) {
    detail::unet::GroupNorm g(c, opt_.groups, hw, num_params_);
    add_tensor(name + ".weight", c, {static_cast<std::int64_t>(c)});
    add_tensor(name + ".bias", c, {static_cast<std::int64_t>(c)});
    return g;
  }
  detail::unet::Dense add_dense(const std::string& name, Index in, Index out) {
    detail::unet::Dense d(in, out, num_params_);
    // Column-major out x in = row-major [in, out]: stored as [in, out] ("x @ W" order).
    add_tensor(name + ".weight", in * out, {static_cast<std::int64_t>(in), static_cast<std::int64_t>(out)});
    add_tensor(name + ".bias", out, {static_cast<std::int64_t>(out)});
    return d;
  }
  int add_res(const std::string& name, Index cin, Index cout, Index h, Index w) {
    detail::unet::ResBlock b;
    b.cin = cin;
    b.cout = cout;
    b.hw = h * w;
    b.gn1 = add_norm(name + ".norm1", cin, h * w);
    b.conv1 = add_conv(name + ".conv1", cin, cout, h, w, ConvKind::k3);
    b.film = add_dense(name + ".film", opt_.embedding, 2 * cout);
    b.gn2 = add_norm(name + ".norm2", cout, h * w);
    b.conv2 = add_conv(name + ".conv2", cout, cout, h, w, ConvKind::k3);
    if (cin != cout) b.skip = add_conv(name + ".skip", cin, cout, h, w, ConvKind::k1);
    blocks_.push_back(b);
    return static_cast<int>(blocks_.size()) - 1;
  }

  void build() {
    const Index E = opt_.embedding, K = opt_.frequencies;
    time1_ = add_dense("time.0", 2 * K, E);
    time2_ = add_dense("time.1", E, E);
    if (kind_ == ConditionKind::Label) {
      label_off_ = num_params_;
      add_tensor("label.weight", E * (size_ + 1), {static_cast<std::int64_t>(size_ + 1), static_cast<std::int64_t>(E)});
    } else {
      cond_ = add_dense("context", size_ + 1, E);
    }
    const auto L = static_cast<Index>(opt_.widths.size());
    std::vector<Index> hs(static_cast<std::size_t>(L)), wsz(static_cast<std::size_t>(L));
    Index h = opt_.height, w = opt_.width;
    const Index c0 = opt_.widths[0];
    new_act(opt_.channels, h * w);  // 0: the input image
    int cur = new_act(c0, h * w);
    ops_.push_back({OpKind::Stem, add_conv("stem", opt_.channels, c0, h, w, ConvKind::k3), 0, -1, cur});
    Index c = c0;
    std::vector<int> skips;
    for (Index l = 0; l < L; ++l) {
      hs[static_cast<std::size_t>(l)] = h;
      wsz[static_cast<std::size_t>(l)] = w;
      const Index wl = opt_.widths[static_cast<std::size_t>(l)];
      for (Index b = 0; b < opt_.blocks; ++b) {
        const int o = new_act(wl, h * w);
        ops_.push_back({OpKind::Res, add_res("down." + std::to_string(l) + "." + std::to_string(b), c, wl, h, w), cur, -1, o});
        cur = o;
        c = wl;
        skips.push_back(cur);
      }
      if (l + 1 < L) {
        const int o = new_act(c, (h / 2) * (w / 2));
        ops_.push_back({OpKind::Down, add_conv("down." + std::to_string(l) + ".downsample", c, c, h, w, ConvKind::k3_stride2),
                        cur, -1, o});
        cur = o;
        h /= 2;
        w /= 2;
      }
    }
    const auto push = [&](OpKind kind, int layer) {
      const int o = new_act(c, h * w);
      ops_.push_back({kind, layer, cur, -1, o});
      cur = o;
    };
    push(OpKind::Res, add_res("mid", c, c, h, w));
    if (opt_.attention > 0) {
      push(OpKind::Attention, add_attention("mid.attn", c, h, w));
      push(OpKind::Res, add_res("mid2", c, c, h, w));
    }
    for (Index l = L - 1; l >= 0; --l) {
      const Index wl = opt_.widths[static_cast<std::size_t>(l)];
      for (Index b = 0; b < opt_.blocks; ++b) {
        const int s = skips.back();
        skips.pop_back();
        const Index cs = act_shape_[static_cast<std::size_t>(s)].first;
        const int cat = new_act(c + cs, h * w);
        ops_.push_back({OpKind::Concat, -1, cur, s, cat});
        const int o = new_act(wl, h * w);
        ops_.push_back({OpKind::Res, add_res("up." + std::to_string(l) + "." + std::to_string(b), c + cs, wl, h, w), cat, -1, o});
        cur = o;
        c = wl;
      }
      if (l > 0) {
        const Index wn = opt_.widths[static_cast<std::size_t>(l - 1)];
        const int o = new_act(wn, 4 * h * w);
        ops_.push_back({OpKind::Up, add_conv("up." + std::to_string(l) + ".upsample", c, wn, h, w, ConvKind::up2_k3), cur, -1, o});
        cur = o;
        c = wn;
        h *= 2;
        w *= 2;
      }
    }
    head_norm_ = add_norm("head.norm", c, h * w);
    out_act_ = new_act(opt_.channels, h * w);
    ops_.push_back({OpKind::Head, add_conv("head.conv", c, opt_.channels, h, w, ConvKind::k3), cur, -1, out_act_});
  }

  void initialize(std::uint64_t seed) {
    Rng rng(seed);
    S* p = parameters_.data();
    time1_.init(p, rng);
    time2_.init(p, rng);
    if (kind_ == ConditionKind::Label) {
      for (Index i = 0; i < opt_.embedding * (size_ + 1); ++i) p[label_off_ + i] = static_cast<S>(rng.normal());
    } else {
      cond_.init(p, rng);
    }
    for (const Conv& cv : convs_) cv.init(p, rng);
    for (const auto& b : blocks_) {
      b.gn1.init(p);
      b.gn2.init(p);
      b.film.init(p, rng);
    }
    head_norm_.init(p);
    for (const auto& a : attns_) a.init(p, rng);
  }

  static Index first_col(Index k, Index parts, Index n) { return k * n / parts; }

  // x (dim x n, CHW per column) columns [c0, c0 + m) -> act (channels x hw m, channels last).
  template <class DX>
  void from_columns(const Eigen::MatrixBase<DX>& x, Index c0, Index m, Matrix<S>& act) const {
    const Index C = opt_.channels, hw = opt_.height * opt_.width;
    detail::unet::ensure(act, C, hw * m);
    if (C == 1) {
      for (Index s = 0; s < m; ++s)
        act.middleCols(s * hw, hw) = x.col(c0 + s).transpose().template cast<S>();
    } else {
      for (Index s = 0; s < m; ++s)
        for (Index ch = 0; ch < C; ++ch)
          act.row(ch).segment(s * hw, hw) = x.col(c0 + s).segment(ch * hw, hw).transpose().template cast<S>();
    }
  }
  template <class DO>
  void to_columns(const Matrix<S>& act, Index c0, Index m, DO& out) const {
    const Index C = opt_.channels, hw = opt_.height * opt_.width;
    for (Index s = 0; s < m; ++s)
      for (Index ch = 0; ch < C; ++ch)
        out.col(c0 + s).segment(ch * hw, hw) = act.row(ch).segment(s * hw, hw).transpose();
  }

  void prepare(Workspace& ws, Index n) const {
    if (ws.batch == n && !ws.parts.empty() && ws.parts[0].grad.size() == num_params_) return;
    const Index parts = std::max<Index>(1, std::min<Index>(num_threads(), n));
    ws.parts.assign(static_cast<std::size_t>(parts), Part{});
    for (Index k = 0; k < parts; ++k) {
      Part& p = ws.parts[static_cast<std::size_t>(k)];
      p.n = first_col(k + 1, parts, n) - first_col(k, parts, n);
      p.act.resize(act_shape_.size());
      p.dact.resize(act_shape_.size());
      for (std::size_t a = 0; a < act_shape_.size(); ++a) {
        p.act[a].resize(act_shape_[a].first, act_shape_[a].second * p.n);
        p.dact[a].resize(act_shape_[a].first, act_shape_[a].second * p.n);
      }
      p.res.resize(blocks_.size());
      p.attn.resize(attns_.size());
      p.dropout_rng.resize(static_cast<std::size_t>(p.n));
      p.label.resize(static_cast<std::size_t>(p.n));
      p.grad.setZero(num_params_);
    }
    ws.out.resize(dim(), n);
    ws.batch = n;
  }

  template <class DX, TimeArgument T>
  void run_forward(const char* where, const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<S>& c,
                   Workspace& ws, bool train) const {
    detail::require_rows(where, "x", x.rows(), dim());
    const Index n = x.cols();
    if (n <= 0) detail::throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    detail::require_unit_times(where, "t", t, n);
    detail::check_condition(where, c, kind_, n, size_);
    prepare(ws, n);
    const auto parts = static_cast<Index>(ws.parts.size());
    auto body = [&](Index k, int) {
      Part& p = ws.parts[static_cast<std::size_t>(k)];
      const Index c0 = first_col(k, parts, n);
      from_columns(x, c0, p.n, p.act[0]);
      embed(p, t, c, c0);
      p.train = train;
      if (train && opt_.dropout > 0)
        for (Index j = 0; j < p.n; ++j) p.dropout_rng[static_cast<std::size_t>(j)].seed(dropout_seed(ws.dropout_step, c0 + j));
      forward_part(p);
      to_columns(p.act[static_cast<std::size_t>(out_act_)], c0, p.n, ws.out);
    };
    detail::ThreadPool::global().run(parts, num_threads(), body);
  }

  // The embedding e (E x n) of the part's times and conditions.
  template <TimeArgument T>
  void embed(Part& p, const T& t, const ConditionBatch<S>& c, Index c0) const {
    const Index n = p.n, K = opt_.frequencies, E = opt_.embedding;
    const S* w = parameters_.data();
    detail::unet::ensure(p.fourier, 2 * K, n);
    for (Index j = 0; j < n; ++j) {
      const double tj = detail::time_at(t, c0 + j);
      for (Index k = 0; k < K; ++k) {
        const double a = std::numbers::pi * std::ldexp(1.0, static_cast<int>(k)) * tj;
        p.fourier(2 * k, j) = static_cast<S>(std::sin(a));
        p.fourier(2 * k + 1, j) = static_cast<S>(std::cos(a));
      }
    }
    detail::unet::ensure(p.z1, E, n);
    detail::unet::ensure(p.a1, E, n);
    detail::unet::ensure(p.emb, E, n);
    detail::unet::ensure(p.e, E, n);
    time1_.forward(w, p.fourier, p.z1);
    detail::unet::silu_forward(p.z1, p.a1);
    time2_.forward(w, p.a1, p.emb);
    if (kind_ == ConditionKind::Label) {
      const Eigen::Map<const Matrix<S>> table(w + label_off_, E, size_ + 1);
      for (Index j = 0; j < n; ++j) {
        const Index y = c.is_present(c0 + j) ? c.labels(c0 + j) : size_;
        p.label[static_cast<std::size_t>(j)] = std::min(y, size_);
        p.emb.col(j) += table.col(p.label[static_cast<std::size_t>(j)]);
      }
    } else {
      detail::unet::ensure(p.cond, size_ + 1, n);
      for (Index j = 0; j < n; ++j) {
        const S pr = c.present(c0 + j);
        p.cond.col(j).head(size_) = pr * c.context_col(c0 + j);
        p.cond(size_, j) = S(1) - pr;
      }
      detail::unet::ensure(p.tmp, E, n);
      cond_.forward(w, p.cond, p.tmp);
      p.emb += p.tmp;
    }
    detail::unet::silu_forward(p.emb, p.e);
  }

  void forward_part(Part& p) const {
    const S* w = parameters_.data();
    const Index n = p.n;
    for (const Op& op : ops_) {
      auto& in = p.act[static_cast<std::size_t>(op.in0)];
      auto& out = p.act[static_cast<std::size_t>(op.out)];
      switch (op.kind) {
        case OpKind::Stem:
        case OpKind::Down:
        case OpKind::Up:
          convs_[static_cast<std::size_t>(op.layer)].forward(w, in, out, p.col, n);
          break;
        case OpKind::Concat: {
          const auto& b = p.act[static_cast<std::size_t>(op.in1)];
          out.topRows(in.rows()) = in;
          out.bottomRows(b.rows()) = b;
          break;
        }
        case OpKind::Res:
          res_forward(blocks_[static_cast<std::size_t>(op.layer)], p.res[static_cast<std::size_t>(op.layer)], p, in, out);
          break;
        case OpKind::Attention:
          attns_[static_cast<std::size_t>(op.layer)].forward(w, in, out, p.attn[static_cast<std::size_t>(op.layer)], n,
                                                             p.norm, p.col);
          break;
        case OpKind::Head: {
          const Index C = in.rows(), P = in.cols();
          detail::unet::ensure(p.head_xhat, C, P);
          detail::unet::ensure(p.head_s, C, P);
          detail::unet::ensure(p.head_rstd, opt_.groups, n);
          head_norm_.forward_silu(w, in, p.head_xhat, p.head_s, p.head_rstd, n, p.norm);
          convs_[static_cast<std::size_t>(op.layer)].forward(w, p.head_s, out, p.col, n);
          break;
        }
      }
    }
  }

  void res_forward(const detail::unet::ResBlock& b, detail::unet::ResCache<S>& r, Part& p, const Matrix<S>& x,
                   Matrix<S>& out) const {
    using detail::unet::ensure;
    const S* w = parameters_.data();
    const Index n = p.n, P = b.hw * n, ci = b.cin, co = b.cout;
    ensure(r.xhat1, ci, P);
    ensure(r.s1, ci, P);
    ensure(r.h1, co, P);
    ensure(r.xhat2, co, P);
    ensure(r.s2, co, P);
    ensure(r.rstd1, opt_.groups, n);
    ensure(r.rstd2, opt_.groups, n);
    ensure(r.film, 2 * co, n);
    b.gn1.forward_silu(w, x, r.xhat1, r.s1, r.rstd1, n, p.norm);
    convs_[static_cast<std::size_t>(b.conv1)].forward(w, r.s1, r.h1, p.col, n);
    b.film.forward(w, p.e, r.film);
    r.film.topRows(co).array() += S(1);  // kept as 1 + scale (the fused GroupNorm reads it so)
    b.gn2.forward_silu(w, r.h1, r.xhat2, r.s2, r.rstd2, n, p.norm, r.film.data());
    if (dropping(p)) drop(p, r.s2, r.mask);
    convs_[static_cast<std::size_t>(b.conv2)].forward(w, r.s2, out, p.col, n);
    if (b.skip >= 0) {
      const Conv& sk = convs_[static_cast<std::size_t>(b.skip)];
      const Eigen::Map<const Matrix<S>> wsk(w + sk.w_off, co, ci);
      const Eigen::Map<const Vector<S>> bs(w + sk.b_off, co);
      detail::product_in_pieces<true, S>(out, wsk, x);
      out.colwise() += bs;
    } else {
      out += x;
    }
  }

  void backward_part(Part& p) const {
    const S* w = parameters_.data();
    S* g = p.grad.data();
    p.grad.setZero();
    const Index n = p.n;
    for (std::size_t a = 0; a < p.dact.size(); ++a)
      if (static_cast<int>(a) != out_act_) p.dact[a].setZero();
    detail::unet::ensure(p.de, opt_.embedding, n);
    p.de.setZero();
    for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
      const Op& op = *it;
      const auto& in = p.act[static_cast<std::size_t>(op.in0)];
      auto& din = p.dact[static_cast<std::size_t>(op.in0)];
      const auto& dout = p.dact[static_cast<std::size_t>(op.out)];
      switch (op.kind) {
        case OpKind::Stem:
        case OpKind::Down:
        case OpKind::Up:
          convs_[static_cast<std::size_t>(op.layer)].backward(w, g, in, dout, &din, p.col, p.dcol, n);
          break;
        case OpKind::Concat: {
          auto& db = p.dact[static_cast<std::size_t>(op.in1)];
          din += dout.topRows(din.rows());
          db += dout.bottomRows(db.rows());
          break;
        }
        case OpKind::Res:
          res_backward(blocks_[static_cast<std::size_t>(op.layer)], p.res[static_cast<std::size_t>(op.layer)], p, in,
                       dout, din);
          break;
        case OpKind::Attention:
          attns_[static_cast<std::size_t>(op.layer)].backward(w, g, dout, din, p.attn[static_cast<std::size_t>(op.layer)],
                                                              n, p.norm, p.col, p.dcol);
          break;
        case OpKind::Head: {
          detail::unet::ensure(p.head_d, in.rows(), in.cols());
          convs_[static_cast<std::size_t>(op.layer)].backward(w, g, p.head_s, dout, &p.head_d, p.col, p.dcol, n, false,
                                                               false);
          head_norm_.backward_silu(w, g, p.head_xhat, p.head_rstd, p.head_d, din, n, p.norm);
          break;
        }
      }
    }
    embed_backward(p);
  }

  void res_backward(const detail::unet::ResBlock& b, detail::unet::ResCache<S>& r, Part& p, const Matrix<S>& x,
                    const Matrix<S>& dout, Matrix<S>& dx) const {
    using detail::unet::ensure;
    const S* w = parameters_.data();
    S* g = p.grad.data();
    const Index n = p.n, P = b.hw * n, ci = b.cin, co = b.cout;
    if (b.skip >= 0)
      convs_[static_cast<std::size_t>(b.skip)].backward(w, g, x, dout, &dx, p.col, p.dcol, n);
    else
      dx += dout;
    ensure(r.d_a, co, P);
    ensure(r.d_b, co, P);
    ensure(r.d_in, ci, P);
    ensure(r.dfilm, 2 * co, n);
    convs_[static_cast<std::size_t>(b.conv2)].backward(w, g, r.s2, dout, &r.d_a, p.col, p.dcol, n, false, false);
    if (dropping(p)) r.d_a.array() *= r.mask.array();  // the dropped entries of s2 get no gradient
    b.gn2.backward_silu(w, g, r.xhat2, r.rstd2, r.d_a, r.d_b, n, p.norm, false, r.film.data(), r.dfilm.data());
    b.film.backward(w, g, p.e, r.dfilm, &p.de);
    convs_[static_cast<std::size_t>(b.conv1)].backward(w, g, r.s1, r.d_b, &r.d_in, p.col, p.dcol, n, false, false);
    b.gn1.backward_silu(w, g, r.xhat1, r.rstd1, r.d_in, dx, n, p.norm);
  }

  bool dropping(const Part& p) const { return p.train && opt_.dropout > 0; }

  // The seed of image `column`'s dropout stream in the forward_train call number `step`.
  std::uint64_t dropout_seed(std::uint64_t step, Index column) const {
    std::uint64_t x = seed_;
    x = detail::splitmix64(x) ^ step;
    x = detail::splitmix64(x) ^ static_cast<std::uint64_t>(column);
    return detail::splitmix64(x);
  }

  // Inverted dropout on s (channels x hw n, in place): each entry kept with probability 1 - p and
  // scaled by 1 / (1 - p), else zeroed; the factors go into mask for the backward pass. Image j
  // draws from its own stream, so the masks do not depend on how the batch is split into parts.
  void drop(Part& p, Matrix<S>& s, Matrix<S>& mask) const {
    detail::unet::ensure(mask, s.rows(), s.cols());
    const double q = opt_.dropout;
    const S keep = static_cast<S>(1.0 / (1.0 - q));
    const Index per = s.size() / p.n;
    for (Index j = 0; j < p.n; ++j) {
      Rng& rng = p.dropout_rng[static_cast<std::size_t>(j)];
      S* m = mask.data() + j * per;
      for (Index i = 0; i < per; ++i) m[i] = rng.uniform() < q ? S(0) : keep;
    }
    s.array() *= mask.array();
  }

  void embed_backward(Part& p) const {
    const S* w = parameters_.data();
    S* g = p.grad.data();
    const Index n = p.n, E = opt_.embedding;
    // de -> d emb (through the SiLU), shared by the time and condition branches.
    detail::unet::silu_backward(p.emb, p.de, p.de);
    if (kind_ == ConditionKind::Label) {
      Eigen::Map<Matrix<S>> dtable(g + label_off_, E, size_ + 1);
      for (Index j = 0; j < n; ++j) dtable.col(p.label[static_cast<std::size_t>(j)]) += p.de.col(j);
    } else {
      cond_.backward(w, g, p.cond, p.de, static_cast<Matrix<S>*>(nullptr));
    }
    detail::unet::ensure(p.tmp, E, n);
    p.tmp.setZero();
    time2_.backward(w, g, p.a1, p.de, &p.tmp);
    detail::unet::silu_backward(p.z1, p.tmp, p.tmp);
    time1_.backward(w, g, p.fourier, p.tmp, static_cast<Matrix<S>*>(nullptr));
  }

  UNetOptions opt_;
  ConditionKind kind_;
  Index size_;
  std::uint64_t seed_;  // of the initialisation and of the dropout masks
  Index num_params_ = 0;
  std::vector<std::pair<Index, Index>> act_shape_;  // (channels, pixels) per activation
  std::vector<Op> ops_;
  std::vector<Conv> convs_;
  std::vector<detail::unet::ResBlock> blocks_;
  std::vector<detail::unet::Attention> attns_;
  std::vector<TensorInfo> tensors_;
  detail::unet::Dense time1_, time2_, cond_;
  detail::unet::GroupNorm head_norm_;
  Index label_off_ = 0;
  int out_act_ = -1;
  Vector<S> parameters_, gradients_;
};

}  // namespace flowmatch

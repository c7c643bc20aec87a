// The batched XOR trainer's epochs (batched.py, `_epochs`) in C++, with the same results bit for
// bit. Every operation whose rounding depends on how it is computed (sigmoid, softplus, sums,
// matrix products) is the same ATen operation on tensors of the same shapes and strides, in the
// same order; only the stopping rule, comparisons and one subtraction, which are exact however
// they are computed, is a plain loop over the runs. What goes is Python's overhead per operation
// and the allocation of every temporary: each result goes into a buffer made once per call, and
// each view is made once. Unlike `_epochs`, it updates terms, signed_logits and threshold in
// place (and returns them).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

using at::Tensor;

// _epochs' last five lines: lt, sub, where, masked_fill, le, lt, and, masked_fill.
template <typename T>
void stopping_rule(const Tensor& val, Tensor& threshold, Tensor& last_improved, Tensor& step,
                   const Tensor& delta, const Tensor& goal, int64_t patience, int64_t epoch) {
  const int64_t runs = val.size(0), n_train = step.size(0);
  const T d = *delta.data_ptr<T>(), target = *goal.data_ptr<T>();
  const T* v = val.data_ptr<T>();
  T *best = threshold.data_ptr<T>(), *s = step.data_ptr<T>();
  int64_t* improved_at = last_improved.data_ptr<int64_t>();
  for (int64_t r = 0; r < runs; ++r) {
    if (v[r] < best[r]) {
      best[r] = v[r] - d;
      improved_at[r] = epoch;
    }
    if (improved_at[r] <= epoch - patience && best[r] < target)
      for (int64_t k = 0; k < n_train; ++k) s[k * runs + r] = 0;
  }
}

std::tuple<Tensor, Tensor, Tensor> epochs(
    const Tensor& x, Tensor w1, Tensor w2, Tensor a, Tensor terms, Tensor signed_logits,
    Tensor step, const Tensor& out_mask, const Tensor& sign, Tensor threshold,
    Tensor last_improved, const Tensor& delta, const Tensor& goal, int64_t patience,
    int64_t first, int64_t last) {
  TORCH_CHECK(step.is_contiguous() && threshold.is_contiguous() && last_improved.is_contiguous(),
              "the stopping rule's loop needs contiguous step, threshold and last_improved");
  const int64_t n = x.size(0), n_train = step.size(0), width = w1.size(1), runs = w1.size(2);
  const auto empty = [&](at::IntArrayRef shape) { return at::empty(shape, x.options()); };
  const auto x_train_t = x.narrow(0, 0, n_train).t().contiguous();
  auto w1_flat = w1.view({3, width * runs});
  auto a_hidden = a.narrow(1, 3, width), a_train = a.narrow(0, 0, n_train);
  auto a_train_hidden = a_train.narrow(1, 3, width);
  auto hv = terms.narrow(0, 0, n_train).narrow(1, 3, width);
  auto train_logits = signed_logits.narrow(0, 0, n_train);
  auto g = empty({n_train, 1, runs}), dh = empty({n_train, width, runs});
  auto g_flat = g.view({n_train, runs}), dh_flat = dh.view({n_train, width * runs});
  auto ag = empty({n_train, 3 + width, runs}), dw2 = empty({3 + width, runs});
  auto h = empty({n, width, runs}), losses = empty({n, runs}), val = empty({runs});
  auto h_flat = h.view({n, width * runs});

  for (int64_t epoch = first; epoch <= last; ++epoch) {
    at::sigmoid_out(g_flat, train_logits).mul_(step);
    at::sub_out(dh, hv, at::mul_out(dh, hv, a_train_hidden)).mul_(g);
    w2.sub_(at::sum_out(dw2, at::mul_out(ag, a_train, g), 0)).mul_(out_mask);
    w1_flat.addmm_(x_train_t, dh_flat, 1, -1);

    // _forward
    at::mm_out(h_flat, x, w1_flat);
    at::sigmoid_out(a_hidden, h);
    at::sum_out(signed_logits, at::mul_out(terms, a, w2), 1).mul_(sign);

    at::sum_out(val, at::softplus_out(losses, signed_logits, 1, 20), 0);  // softplus' defaults
    AT_DISPATCH_FLOATING_TYPES(val.scalar_type(), "stopping_rule", [&] {
      stopping_rule<scalar_t>(val, threshold, last_improved, step, delta, goal, patience, epoch);
    });
  }
  return {terms, signed_logits, threshold};
}

TORCH_LIBRARY(dlclassics_xor, m) { m.def("epochs", &epochs); }

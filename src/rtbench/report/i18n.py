"""Every string of the report, in every language, in one place: a dict of message templates.

A template is formatted with ``str.format``; both languages of a key take the same placeholders
(a test checks it). ``translator(lang)`` returns the function the report's builders call.
"""
from __future__ import annotations

from typing import Callable

from rtbench.errors import UserError

LANGS = ("en", "ru")

MESSAGES: dict[str, dict[str, str]] = {
    # title, sections
    "title": {"en": "rtbench report — {model} on {device}", "ru": "Отчёт rtbench — {model} на {device}"},
    "run_line": {"en": "Run `{id}`, {created}, status **{status}**.",
                 "ru": "Запуск `{id}`, {created}, статус **{status}**."},
    "h_method": {"en": "Method", "ru": "Методология"},
    "h_results": {"en": "Results", "ru": "Результаты"},
    "h_plots": {"en": "Plots", "ru": "Графики"},
    "h_conclusions": {"en": "Conclusions", "ru": "Выводы"},
    "h_not_measured": {"en": "Cells not measured", "ru": "Неизмеренные ячейки"},
    "h_fairness": {"en": "Fairness warnings", "ru": "Предупреждения о честности сравнения"},
    "fairness_none": {"en": "None: no check found a reason to distrust the comparison.",
                      "ru": "Нет: ни одна проверка не нашла причин не доверять сравнению."},
    "h_telemetry": {"en": "Telemetry", "ru": "Телеметрия"},
    "h_group": {"en": "{precision} · {device} · boundary {boundary}", "ru": "{precision} · {device} · граница {boundary}"},
    "cells_count": {"en": "Cells: {counts}", "ru": "Ячейки: {counts}"},
    "no_cells": {"en": "No cells were stored for this run.", "ru": "Для этого запуска не сохранено ни одной ячейки."},
    "table_note": {
        "en": "Times in ms: estimate ±95% CI half-width, or the CI itself when it is wider than ±10% (see Statistic "
              "above). ↑ = speedup vs torch (95% CI). "
              "**Bold**: fastest with its CI clear of every other runtime's. ⚠ = outputs beyond the parity tolerance. "
              "* = CI wider than the target. † = launch-bound: the time follows the host CPU.",
        "ru": "Время в мс: оценка ±полуширина 95% ДИ или сам ДИ, если он шире ±10% (см. «Статистика» выше). ↑ = "
              "ускорение относительно torch (95% ДИ). **Жирным**: самый быстрый, и его ДИ не пересекается с ДИ остальных. ⚠ = выходы вне допуска "
              "сверки. * = ДИ шире цели. † = упирается в запуск ядер: время следует за CPU хоста."},
    "fix": {"en": "Fix", "ru": "Как исправить"},
    # table headers
    "col_size": {"en": "Size", "ru": "Размер"},
    "col_batch": {"en": "Batch", "ru": "Batch"},
    "col_ms": {"en": "{rt} ms", "ru": "{rt} мс"},
    "col_fps": {"en": "{rt} FPS", "ru": "{rt} FPS"},
    "col_speedup": {"en": "{rt} ↑", "ru": "{rt} ↑"},
    "col_img": {"en": "{rt} ms/img", "ru": "{rt} мс/изобр."},
    "col_load": {"en": "{rt} load %", "ru": "{rt} загрузка %"},
    "col_runtime": {"en": "Runtime", "ru": "Среда"},
    "col_precision": {"en": "Precision", "ru": "Точность"},
    "col_status": {"en": "Status", "ru": "Статус"},
    "col_reason": {"en": "Reason", "ru": "Причина"},
    "col_power_w": {"en": "Power W", "ru": "Мощность, Вт"},
    "col_joules_per_image": {"en": "J/image", "ru": "Дж/изобр."},
    "col_sm_clock_mhz": {"en": "SM clock MHz", "ru": "Частота SM, МГц"},
    # method
    "m_model": {"en": "**Model:** `{model}` ({weights} weights); outputs checked against {reference}",
                "ru": "**Модель:** `{model}` (веса: {weights}); выходы сверены с {reference}"},
    "m_device": {"en": "**Device:** {device} — {name}; torch threads {threads} (every runtime uses the same)",
                 "ru": "**Устройство:** {device} — {name}; потоков torch: {threads} (у всех сред одинаково)"},
    "m_boundary": {"en": "**Boundary:** {text}", "ru": "**Граница замера:** {text}"},
    "b_compute": {"en": "compute — input already on the device, output left there (ONNX Runtime: IO binding)",
                  "ru": "compute — вход уже на устройстве, выход остаётся там (ONNX Runtime: IO binding)"},
    "b_end-to-end": {"en": "end-to-end — host array in, host array out, copies included",
                     "ru": "end-to-end — массив с хоста на вход и на хост на выходе, копирования включены"},
    "m_precisions": {"en": "**Precisions:** {precisions} (fp32 is strict: TF32 off)",
                     "ru": "**Точности:** {precisions} (fp32 строгая: TF32 выключен)"},
    "m_grid": {"en": "**Grid:** runtimes {runtimes}; sizes {sizes}; batches {batches}",
               "ru": "**Сетка:** среды {runtimes}; размеры {sizes}; batch {batches}"},
    "m_clock_cuda": {"en": "**Clock:** CUDA events on the runtime's stream (host wall time with sync also stored)",
                     "ru": "**Часы:** CUDA events на потоке среды (время хоста с синхронизацией тоже сохранено)"},
    "m_clock_host": {"en": "**Clock:** host wall clock (perf_counter_ns)",
                     "ru": "**Часы:** часы хоста (perf_counter_ns)"},
    "m_warmup": {"en": "**Warm-up:** at least {calls} calls and {min_s:g} s, longer (up to {max_s:g} s) until the "
                       "medians of the last two windows of {window} calls agree within {tol:.0%}",
                 "ru": "**Прогрев:** не меньше {calls} вызовов и {min_s:g} с, дольше (до {max_s:g} с), пока медианы "
                       "двух последних окон по {window} вызовов не совпадут в пределах {tol:.0%}"},
    "m_warmup_unstable": {"en": "; {n} cell(s) reached the warm-up cap before the timings settled",
                          "ru": "; в {n} ячейк(ах) прогрев упёрся в лимит, не дождавшись стабильности"},
    "m_warmup_unchecked": {"en": "; in {n} cell(s) too few calls fitted in the cap to compare two windows (not checked)",
                           "ru": "; в {n} ячейк(ах) до лимита уместилось слишком мало вызовов, чтобы сравнить два окна "
                                 "(не проверено)"},
    "m_rounds": {"en": "**Rounds:** every cell is measured in at least {rounds} rounds, and in more (up to {max}) while "
                       "the run's budget lasts, so that its rounds span the run. A round is one block of every cell, in a "
                       "seeded shuffled order, with the runtimes of one size, batch and precision in adjacent blocks; a "
                       "block is {rewarm:g} ms of untimed re-warm calls, then timed calls for the block length (at least "
                       "one). When time runs short, cells whose 95% CI half-width is above {target:.1%} of their "
                       "estimate get it first.",
                 "ru": "**Раунды:** каждая ячейка измеряется не меньше чем в {rounds} раундах и, пока хватает бюджета "
                       "прогона, в большем числе (до {max}), чтобы раунды покрывали весь прогон. Раунд — по одному блоку "
                       "каждой ячейки в перемешанном (с зерном) порядке; среды одного размера, batch и точности идут "
                       "соседними блоками; блок — {rewarm:g} мс повторного прогрева без замера, затем замеряемые вызовы "
                       "на длину блока (хотя бы один). Когда времени мало, его первыми получают ячейки, у которых "
                       "полуширина 95% ДИ больше {target:.1%} от оценки."},
    "m_budget": {"en": "Run budget {budget:g} s; blocks of {block:.0f} ms; cells left wider than the target are listed in "
                       "the fairness warnings.",
                 "ru": "Бюджет прогона {budget:g} с; блоки по {block:.0f} мс; ячейки с ДИ шире цели перечислены в "
                       "предупреждениях."},
    "m_legacy": {"en": "**Stop rule (schema-1 run):** one block per cell, until its i.i.d. CI met the target or a time "
                       "cap; such intervals are not calibrated.",
                 "ru": "**Правило остановки (запуск схемы 1):** один блок на ячейку до достижения цели по ДИ (i.i.d.) "
                       "или лимита времени; такие интервалы не откалиброваны."},
    "m_samples": {"en": "**Per cell:** {rlo}–{rhi} rounds (median {rmed}), {lo}–{hi} timed calls (median {med}); every "
                        "sample is kept in the store with its round",
                  "ru": "**На ячейку:** {rlo}–{rhi} раундов (медиана {rmed}), {lo}–{hi} замеров (медиана {med}); все "
                        "замеры хранятся в базе вместе с номером раунда"},
    "m_statistic": {"en": "**Statistic:** per round, the 10% trimmed mean of the block's calls; per cell, the geometric "
                          "mean of its round estimates with a 95% Student-t interval on their logarithms, the number of "
                          "rounds discounted for their autocorrelation in time (drift between rounds widens it). Speedup "
                          "vs torch: geometric mean of the per-round ratios (adjacent blocks of each round), same "
                          "interval on their logarithms",
                    "ru": "**Статистика:** в каждом раунде — усечённое на 10% среднее вызовов блока; по ячейке — среднее "
                          "геометрическое оценок раундов с 95% интервалом Стьюдента по их логарифмам, где число раундов "
                          "уменьшено с учётом их автокорреляции во времени (дрейф между раундами расширяет интервал). "
                          "Ускорение относительно torch — среднее геометрическое отношений по раундам (соседние блоки "
                          "раунда), тот же интервал по их логарифмам"},
    "m_statistic_mean": {"en": "; in {n} cell(s) blocks had fewer than 10 calls, so the per-round statistic is the plain mean",
                         "ru": "; в {n} ячейк(ах) в блоках было меньше 10 вызовов, поэтому оценка раунда — обычное среднее"},
    "m_statistic_v1": {"en": "**Statistic:** 10% trimmed mean ± half-width of its i.i.d. bootstrap 95% CI (schema-1 run); "
                             "speedup vs torch = ratio of trimmed means with a bootstrap 95% CI",
                       "ru": "**Статистика:** усечённое на 10% среднее ± полуширина его бутстреп-95% ДИ (i.i.d., запуск "
                             "схемы 1); ускорение = отношение усечённых средних с бутстреп-95% ДИ"},
    "m_harness": {"en": "**Harness cost:** {ns:.0f} ns per timed call (null runtime)",
                  "ru": "**Накладные расходы замера:** {ns:.0f} нс на вызов (пустая среда null)"},
    "m_time": {"en": "**Run time:** {total:.1f} s: set-up {setup:.1f} s (export, sessions, compilation, first calls), "
                     "measurement {measure:.1f} s (warm-up and timed calls), checks {checks:.1f} s (parity, statistics), "
                     "fixed work {fixed:.1f} s (worker processes, peaks, environment, imports)",
               "ru": "**Время прогона:** {total:.1f} с: подготовка {setup:.1f} с (экспорт, сессии, компиляция, первые "
                     "вызовы), замеры {measure:.1f} с (прогрев и замеры), проверки {checks:.1f} с (сверка выходов, "
                     "статистика), прочее {fixed:.1f} с (рабочие процессы, пики, окружение, импорт)"},
    "m_compile": {"en": "**Compilation (on-disk caches, `<out>/cache`):** {text}",
                  "ru": "**Компиляция (кэши на диске, `<out>/cache`):** {text}"},
    "m_load": {"en": "**Utilisation (load %):** achieved FLOP/s (torch.utils.flop_counter, 2 FLOPs per multiply-add) "
                     "over the peak of the precision that ran: {which}",
               "ru": "**Загрузка (load %):** достигнутые FLOP/s (torch.utils.flop_counter, 2 FLOP на умножение-"
                     "сложение) к пику той точности, что реально работала: {which}"},
    "m_load_both": {"en": "datasheet / measured", "ru": "паспортный / измеренный"},
    "m_load_meas": {"en": "measured", "ru": "измеренный"},
    "m_threads": {"en": "**Threads per runtime:** {text}", "ru": "**Потоки по средам:** {text}"},
    "m_versions": {"en": "**Versions:** {text}", "ru": "**Версии:** {text}"},
    "m_failed": {"en": "**Cells not measured:** {text} (reasons below)",
                 "ru": "**Неизмеренные ячейки:** {text} (причины ниже)"},
    "none": {"en": "none", "ru": "нет"},
    # plots: titles and axes
    "p_fps_vs_size": {"en": "FPS vs input size (batch {batch})", "ru": "FPS от размера входа (batch {batch})"},
    "p_fps_vs_batch": {"en": "FPS vs batch size ({size}×{size})", "ru": "FPS от batch size ({size}×{size})"},
    "p_time_per_image": {"en": "Time per image ({size}×{size})", "ru": "Время на 1 изображение ({size}×{size})"},
    "p_speedup_vs_size": {"en": "Speedup vs torch by input size (batch {batch})",
                          "ru": "Ускорение относительно torch по размеру входа (batch {batch})"},
    "p_speedup_vs_batch": {"en": "Speedup vs torch by batch size ({size}×{size})",
                           "ru": "Ускорение относительно torch по batch size ({size}×{size})"},
    "p_utilisation": {"en": "Utilisation (load %, {which} peak)", "ru": "Загрузка (load %, пик: {which})"},
    "p_latency_dist": {"en": "Latency distribution ({size}×{size}, batch {batch})",
                       "ru": "Распределение задержки ({size}×{size}, batch {batch})"},
    "p_speedup_heatmap": {"en": "Speedup vs torch, size × batch (~ = 95% CI includes 1)",
                          "ru": "Ускорение относительно torch, размер × batch (~ = 95% ДИ включает 1)"},
    "p_throughput_latency": {"en": "Throughput vs latency ({size}×{size}; labels = batch)",
                             "ru": "Пропускная способность и задержка ({size}×{size}; метки = batch)"},
    "peak_datasheet": {"en": "datasheet", "ru": "паспортный"},
    "peak_measured": {"en": "measured", "ru": "измеренный"},
    "ax_size": {"en": "input size, px", "ru": "размер входа, px"},
    "ax_batch": {"en": "batch size", "ru": "batch size"},
    "ax_fps": {"en": "images / s", "ru": "изображений / с"},
    "ax_ms_img": {"en": "ms per image", "ru": "мс на изображение"},
    "ax_ms": {"en": "latency per call, ms", "ru": "задержка вызова, мс"},
    "ax_speedup": {"en": "speedup vs torch (×)", "ru": "ускорение относительно torch (×)"},
    "ax_load": {"en": "load %", "ru": "загрузка %"},
    "ax_by_size": {"en": "by size (batch {batch})", "ru": "по размеру (batch {batch})"},
    "ax_by_batch": {"en": "by batch ({size}×{size})", "ru": "по batch ({size}×{size})"},
    "plots_skipped": {"en": "Not drawn (one value only or no data): {names}.",
                      "ru": "Не построены (одно значение или нет данных): {names}."},
    "plot_note": {"en": "Error bars: 95% CI.", "ru": "Планки погрешностей: 95% ДИ."},
    # conclusions
    "c_best_h": {"en": "Which runtime is faster?", "ru": "Какой подход лучше?"},
    "c_best_table": {"en": "Fastest runtime per size (small batch = {small}, large batch = {large}); × = speedup vs "
                           "torch with its 95% CI:",
                     "ru": "Самая быстрая среда по размерам (малый batch = {small}, большой batch = {large}); × = "
                           "ускорение относительно torch с 95% ДИ:"},
    "c_small": {"en": "small batch ({batch})", "ru": "малый batch ({batch})"},
    "c_large": {"en": "large batch ({batch})", "ru": "большой batch ({batch})"},
    "c_win": {"en": "**{rt}** {x}", "ru": "**{rt}** {x}"},
    "c_x": {"en": "{s:.2f}× ({lo:.2f}–{hi:.2f})", "ru": "{s:.2f}× ({lo:.2f}–{hi:.2f})"},
    "c_x_point": {"en": "{s:.2f}×", "ru": "{s:.2f}×"},
    "c_baseline_x": {"en": "(baseline; {margin:.2f}× faster than {other})",
                     "ru": "(базовая; в {margin:.2f}× быстрее {other})"},
    "c_margin_x": {"en": "({margin:.2f}× faster than {other})", "ru": "(в {margin:.2f}× быстрее {other})"},
    "c_nsd": {"en": "no significant difference ({rts})", "ru": "нет значимой разницы ({rts})"},
    "c_nsd_base": {"en": "; faster than torch: {rts}", "ru": "; быстрее torch: {rts}"},
    "c_alone": {"en": "{rt} only", "ru": "только {rt}"},
    "c_alone_match": {"en": "only {rt} has matching outputs", "ru": "совпадающие выходы только у {rt}"},
    "c_no_match": {"en": "no runtime's outputs match (⚠ {rts})", "ru": "ни у одной среды выходы не совпали (⚠ {rts})"},
    "c_nodata": {"en": "–", "ru": "–"},
    "c_among": {"en": "; fastest among runtimes whose outputs match", "ru": "; быстрее всех среди сред с совпадающими выходами"},
    "c_rivals": {"en": " (⚠ {rts}: as fast or faster, outputs beyond tolerance)",
                 "ru": " (⚠ {rts}: не медленнее, но выходы вне допуска)"},
    "c_count": {"en": "{rt} at {k} of {n} sizes", "ru": "{rt} — на {k} из {n} размеров"},
    "c_regime_sum": {"en": "{regime}: **{rt}** is significantly fastest at {k} of {n} sizes (up to {best:.2f}× vs torch).",
                     "ru": "{regime}: **{rt}** значимо быстрее всех на {k} из {n} размеров (до {best:.2f}× к torch)."},
    "c_regime_sum_base": {"en": "{regime}: **{rt}** is significantly fastest at {k} of {n} sizes.",
                          "ru": "{regime}: **{rt}** значимо быстрее всех на {k} из {n} размеров."},
    "c_regime_tie": {"en": "{regime}: no single leader — {rts} are each significantly fastest at {k} of {n} sizes.",
                     "ru": "{regime}: единого лидера нет — {rts} значимо быстрее всех, каждая на {k} из {n} размеров."},
    "c_regime_none": {"en": "{regime}: no runtime is significantly fastest at any size; fastest or within the noise of "
                            "the fastest: {items}.",
                      "ru": "{regime}: ни одна среда не быстрее значимо ни на одном размере; самые быстрые или в "
                            "пределах шума от самой быстрой: {items}."},
    "c_also": {"en": "Also significantly fastest: {items}.", "ru": "Также значимо быстрее всех: {items}."},
    "c_missing": {"en": "{rt} has no measurement with matching outputs at {sizes}.",
                  "ru": "У {rt} нет замера с совпадающими выходами на {sizes}."},
    "c_vs_base": {"en": "Significantly faster than torch: {items}.", "ru": "Значимо быстрее torch: {items}."},
    "c_vs_base_none": {"en": "None of them is significantly faster than torch at any size.",
                       "ru": "Ни одна из них не быстрее torch значимо ни на одном размере."},
    "c_rivals_regime": {"en": "As fast or faster than the fastest runtime with matching outputs, but with outputs beyond "
                              "tolerance (not recommended): {items}.",
                        "ru": "Не медленнее самой быстрой среды с совпадающими выходами, но с выходами вне допуска "
                              "(не рекомендуются): {items}."},
    "c_no_ci": {"en": "Without a usable CI (too few samples or undefined bounds), so never called faster or slower: "
                      "{items}.",
                "ru": "Без пригодного ДИ (мало замеров или границы не определены), поэтому не признаны ни быстрее, ни "
                      "медленнее: {items}."},
    "c_batch_h": {"en": "Effect of batch size", "ru": "Влияние batch size"},
    "c_batch_intro": {"en": "The batch shown is the smallest whose FPS is within {gain:.0%} of the best batch's and not "
                            "significantly below it (FPS CIs overlap); only cells with matching outputs take part.",
                      "ru": "Указан наименьший batch, чей FPS не более чем на {gain:.0%} ниже лучшего batch и не ниже "
                            "его значимо (ДИ FPS пересекаются); учитываются только ячейки с совпадающими выходами."},
    "c_sat_one": {"en": "only batch {batch} measured", "ru": "измерен только batch {batch}"},
    "c_sat_one_match": {"en": "only batch {batch} has matching outputs", "ru": "совпадающие выходы только у batch {batch}"},
    "c_pick_best": {"en": "{batch} (highest FPS)", "ru": "{batch} (наибольший FPS)"},
    "c_pick_near": {"en": "{batch} (batch {best}: {gain:+.1%}, within {tol:.0%} and the noise)",
                    "ru": "{batch} (batch {best}: {gain:+.1%}, в пределах {tol:.0%} и шума)"},
    "c_pick_grows": {"en": "still growing at {batch}, the largest measured (+{gain:.0%} over batch {prev})",
                     "ru": "растёт до наибольшего измеренного {batch} (+{gain:.0%} к batch {prev})"},
    "c_left_out": {"en": "; ⚠ batch {batches} left out: outputs beyond tolerance",
                   "ru": "; ⚠ batch {batches} не учитываются: выходы вне допуска"},
    "c_mismatch_only": {"en": "⚠ outputs beyond tolerance", "ru": "⚠ выходы вне допуска"},
    "c_size_h": {"en": "Effect of input size", "ru": "Влияние размера изображения"},
    "c_size_line": {"en": "**{rt}** (batch {batch}): from {lo}×{lo} to {hi}×{hi} px ({px:.1f}× the pixels) FPS "
                          "changes {fps_lo:.1f} → {fps_hi:.1f} ({ratio:.1f}× fewer); time per image grows {t:.1f}× "
                          "({how}).",
                    "ru": "**{rt}** (batch {batch}): с {lo}×{lo} до {hi}×{hi} px (пикселей в {px:.1f}× больше) FPS "
                          "меняется {fps_lo:.1f} → {fps_hi:.1f} (в {ratio:.1f}× меньше); время на изображение растёт "
                          "в {t:.1f}× ({how})."},
    "c_size_sub": {"en": "less than the pixel count: small inputs underuse the device",
                   "ru": "медленнее числа пикселей: малые входы недогружают устройство"},
    "c_size_lin": {"en": "in line with the pixel count", "ru": "пропорционально числу пикселей"},
    "c_size_super": {"en": "faster than the pixel count", "ru": "быстрее числа пикселей"},
    "c_size_unclear": {"en": "the noise or too few samples leave open how it compares with the pixel count",
                       "ru": "из-за шума или малого числа замеров неясно, как это соотносится с числом пикселей"},
    "c_size_one": {"en": "Only one input size was measured.", "ru": "Измерен только один размер входа."},
    "c_rec_h": {"en": "Recommendation", "ru": "Рекомендация"},
    "c_rec_latency": {"en": "For latency (batch {batch}): use **{rt}** — significantly fastest at {k} of {n} sizes.",
                      "ru": "Для минимальной задержки (batch {batch}): **{rt}** — значимо быстрее всех на {k} из {n} "
                            "размеров."},
    "c_rec_latency_tie": {"en": "For latency (batch {batch}): no single pick — {rts} are each significantly fastest at "
                                "{k} of {n} sizes; choose by the input size you use (table above).",
                          "ru": "Для минимальной задержки (batch {batch}): единого выбора нет — {rts} значимо быстрее "
                                "всех, каждая на {k} из {n} размеров; выбирайте по своему размеру входа (таблица выше)."},
    "c_rec_latency_top": {"en": "For latency (batch {batch}): no runtime is significantly fastest; fastest or within the "
                                "noise of the fastest: {items}.",
                          "ru": "Для минимальной задержки (batch {batch}): ни одна среда не быстрее значимо; самые "
                                "быстрые или в пределах шума от самой быстрой: {items}."},
    "c_rec_latency_none": {"en": "For latency (batch {batch}): no runtime is significantly faster; the baseline "
                                 "(torch) is as good as any measured here.",
                           "ru": "Для минимальной задержки (batch {batch}): ни одна среда не быстрее значимо; базовый "
                                 "torch не хуже остальных."},
    "c_fps": {"en": "{fps:.1f} FPS, {lo:.1f}–{hi:.1f}", "ru": "{fps:.1f} FPS, {lo:.1f}–{hi:.1f}"},
    "c_fps_noci": {"en": "{fps:.1f} FPS, too few samples for a CI", "ru": "{fps:.1f} FPS, мало замеров для ДИ"},
    "c_rec_tp": {"en": "For throughput ({size}×{size}): **{rt}** at batch {batch} ({fps}) — the highest FPS of any "
                       "runtime, its CI clear of every other runtime's best; {why}.",
                 "ru": "Для пропускной способности ({size}×{size}): **{rt}** с batch {batch} ({fps}) — наибольший FPS "
                       "среди сред, его ДИ не пересекается с лучшими у остальных; {why}."},
    "c_rec_tp_alone": {"en": "For throughput ({size}×{size}): **{rt}** at batch {batch} ({fps}), the only runtime "
                             "measured with matching outputs; {why}.",
                       "ru": "Для пропускной способности ({size}×{size}): **{rt}** с batch {batch} ({fps}), "
                             "единственная среда с совпадающими выходами; {why}."},
    "c_rec_tp_tie": {"en": "For throughput ({size}×{size}): no single pick — the best FPS of these runtimes are within "
                           "the noise of each other: {items}.",
                     "ru": "Для пропускной способности ({size}×{size}): единого выбора нет — лучшие FPS этих сред в "
                           "пределах шума друг от друга: {items}."},
    "c_tp_item": {"en": "**{rt}** at batch {batch} ({fps})", "ru": "**{rt}** с batch {batch} ({fps})"},
    "c_tp_grows": {"en": "throughput was still growing at the largest batch measured, so try larger batches",
                   "ru": "рост не прекратился на наибольшем измеренном batch — стоит попробовать больший"},
    "c_tp_best": {"en": "the highest FPS of its batches", "ru": "наибольший FPS среди её batch"},
    "c_tp_near": {"en": "batch {best} gives {gain:+.1%} ({fps}), within {tol:.0%} and not significantly more, so the "
                        "smaller batch",
                  "ru": "batch {best} даёт {gain:+.1%} ({fps}) — в пределах {tol:.0%} и не значимо больше, поэтому "
                        "меньший batch"},
    "c_rt_batch": {"en": "{rt} at batch {batch}", "ru": "{rt} с batch {batch}"},
    "c_tp_rivals": {"en": " ⚠ {rts}: as many FPS or more, but outputs beyond tolerance (not recommended).",
                    "ru": " ⚠ {rts}: не меньше FPS, но выходы вне допуска (не рекомендуется)."},
    "c_rec_size": {"en": "Input size costs throughput as shown above: use the smallest size the accuracy allows.",
                   "ru": "Размер входа снижает пропускную способность, как показано выше: берите наименьший размер, "
                         "допустимый по точности."},
    "c_rec_launch_bound": {"en": "{n} cell(s) marked † are launch-bound ({cells}): the GPU waited for the host to "
                                 "enqueue work, so their time follows the host CPU and can differ on another host or "
                                 "minute; their intervals are wide for it. To go faster there, replay CUDA graphs "
                                 "(torch-cudagraph, onnxruntime-cudagraph), use torch.compile, or a larger batch.",
                           "ru": "{n} ячейк(и) с † упираются в запуск ядер ({cells}): GPU ждал, пока хост поставит "
                                 "работу в очередь, поэтому их время следует за CPU хоста и может отличаться на другом "
                                 "хосте или в другую минуту; их интервалы поэтому широкие. Чтобы ускорить их, "
                                 "воспроизводите CUDA graphs (torch-cudagraph, onnxruntime-cudagraph), используйте "
                                 "torch.compile или больший batch."},
    "c_rec_mismatch": {"en": "Cells marked ⚠ failed the output check: do not use those configurations before "
                             "checking their accuracy.",
                       "ru": "Ячейки с ⚠ не прошли сверку выходов: не используйте эти конфигурации без проверки "
                             "точности."},
    # comparison of two runs (rtbench compare)
    "cmp_title": {"en": "rtbench comparison — {new} against {base}", "ru": "Сравнение rtbench — {new} относительно {base}"},
    "cmp_run_line": {"en": "**{side}**: run `{id}` of `{source}`, `{model}` on {device}, boundary {boundary}, "
                           "{created}, status **{status}**.",
                     "ru": "**{side}**: запуск `{id}` из `{source}`, `{model}` на {device}, граница {boundary}, "
                           "{created}, статус **{status}**."},
    "cmp_h_verdict": {"en": "Verdict", "ru": "Итог"},
    "cmp_outcome_pass": {"en": "No cell is a significant regression beyond {t:g}%.",
                         "ru": "Ни одна ячейка не стала значимо медленнее более чем на {t:g}%."},
    "cmp_outcome_regression": {"en": "**{n} regression(s)** beyond {t:g}%: slower with significance, or ok in BASE and "
                                     "failed, mismatch, oom or timeout in NEW.",
                               "ru": "**Регрессий: {n}** сверх {t:g}%: значимо медленнее, либо ok в BASE и failed, "
                                     "mismatch, oom или timeout в NEW."},
    "cmp_outcome_inconclusive": {"en": "No significant regression beyond {t:g}%, but {n} cell(s) could still be one: "
                                       "their intervals are too wide to decide.",
                                 "ru": "Значимых регрессий сверх {t:g}% нет, но {n} ячейк(и) ещё могут ими оказаться: "
                                       "их интервалы слишком широки, чтобы решить."},
    "cmp_outcome_not_comparable": {"en": "**Not comparable**: the runs differ in fields that change speed ({keys}; "
                                         "see Environment), so the verdicts below are for information only. "
                                         "`--allow-different {keys}` accepts these differences on purpose.",
                                   "ru": "**Несравнимо**: запуски различаются в полях, влияющих на скорость ({keys}; "
                                         "см. «Окружение»), поэтому вердикты ниже — только для сведения. "
                                         "`--allow-different {keys}` принимает эти различия намеренно."},
    "cmp_counts": {"en": "Cells: {counts}.", "ru": "Ячейки: {counts}."},
    "cmp_h_method": {"en": "Method", "ru": "Методология"},
    "cmp_m_ratio": {"en": "Ratio = NEW / BASE of the cells' estimates (geometric means of their round estimates): "
                          "above 1 is slower.",
                    "ru": "Отношение = NEW / BASE оценок ячеек (геометрических средних оценок раундов): больше 1 — "
                          "медленнее."},
    "cmp_m_ci": {"en": "95% CI: Welch's interval on the log round estimates, each run's effective rounds (rounds "
                       "discounted for their autocorrelation) as its sample size; rounds of two runs are never paired.",
                 "ru": "95% ДИ: интервал Уэлча по логарифмам оценок раундов, объём выборки каждого запуска — его "
                       "эффективное число раундов (с поправкой на автокорреляцию); раунды двух запусков не "
                       "сопоставляются попарно."},
    "cmp_m_verdicts": {"en": "Threshold {t:g}%: **slower** when the one-sided p-value of \"ratio above {up:.3f}\" is at "
                             "most 2.5% after Holm's correction, **faster** the same below {down:.3f}, **same** when "
                             "the 95% CI lies inside {down:.3f}–{up:.3f}, **inconclusive** otherwise, with about how "
                             "many more rounds would decide (a CI's width scales as 1/√(effective rounds)).",
                       "ru": "Порог {t:g}%: **медленнее** — если одностороннее p-значение гипотезы «отношение выше "
                             "{up:.3f}» не больше 2,5% после поправки Холма, **быстрее** — то же ниже {down:.3f}, "
                             "**без изменений** — если 95% ДИ лежит внутри {down:.3f}–{up:.3f}, иначе **не "
                             "определено**, с оценкой, сколько ещё раундов нужно для решения (ширина ДИ убывает как "
                             "1/√(эффективных раундов))."},
    "cmp_m_holm": {"en": "Holm's correction over the {m} cells with an interval in both runs, on the one-sided "
                         "p-values of \"beyond the threshold\" (family-wise 2.5%); for a single cell, slower means "
                         "its 95% CI lies wholly above {up:.3f}.",
                   "ru": "Поправка Холма по {m} ячейкам, у которых есть интервал в обоих запусках, на односторонние "
                         "p-значения гипотезы «за порогом» (групповой уровень 2,5%); для одной ячейки «медленнее» "
                         "означает, что её 95% ДИ целиком выше {up:.3f}."},
    "cmp_m_status": {"en": "A cell ok in BASE and failed, mismatch, oom or timeout in NEW is a regression of its own "
                           "kind. A cell with one round (schema-1 runs) has no interval from rounds: inconclusive, "
                           "never judged by an i.i.d. bootstrap.",
                     "ru": "Ячейка, которая была ok в BASE и стала failed, mismatch, oom или timeout в NEW, — "
                           "регрессия особого рода. У ячейки с одним раундом (запуски схемы 1) нет интервала по "
                           "раундам: не определено, без вердикта по i.i.d. бутстрепу."},
    "cmp_h_env": {"en": "Environment", "ru": "Окружение"},
    "cmp_env_same": {"en": "No recorded field differs between the runs.",
                     "ru": "Ни одно записанное поле не различается между запусками."},
    "cmp_env_note": {"en": "A difference in a field that changes speed makes the runs not comparable unless "
                           "`--allow-different` names it; a field recorded in one run only cannot be compared and is "
                           "only shown.",
                     "ru": "Различие в поле, влияющем на скорость, делает запуски несравнимыми, если его не назвать в "
                           "`--allow-different`; поле, записанное только в одном запуске, сравнить нельзя — оно "
                           "только показано."},
    "cmp_col_field": {"en": "Field", "ru": "Поле"},
    "cmp_col_speed": {"en": "Changes speed", "ru": "Влияет на скорость"},
    "cmp_col_effect": {"en": "Effect", "ru": "Следствие"},
    "cmp_col_cells": {"en": "Cells", "ru": "Ячейки"},
    "cmp_eff_blocking": {"en": "not comparable", "ru": "несравнимо"},
    "cmp_eff_allowed": {"en": "allowed (--allow-different)", "ru": "разрешено (--allow-different)"},
    "cmp_eff_shown": {"en": "shown only", "ru": "только показано"},
    "cmp_eff_unrecorded": {"en": "recorded in one run only: shown only", "ru": "записано только в одном запуске: только показано"},
    "cmp_not_recorded": {"en": "not recorded", "ru": "не записано"},
    "cmp_yes": {"en": "yes", "ru": "да"},
    "cmp_no": {"en": "no", "ru": "нет"},
    "cmp_h_regressions": {"en": "Regressions", "ru": "Регрессии"},
    "cmp_h_cells": {"en": "Cells in both runs", "ru": "Ячейки обоих запусков"},
    "cmp_h_one_side": {"en": "Cells in one run only", "ru": "Ячейки только одного запуска"},
    "cmp_col_ms_base": {"en": "BASE ms", "ru": "BASE мс"},
    "cmp_col_ms_new": {"en": "NEW ms", "ru": "NEW мс"},
    "cmp_col_ratio": {"en": "NEW/BASE (95% CI)", "ru": "NEW/BASE (95% ДИ)"},
    "cmp_col_verdict": {"en": "Verdict", "ru": "Вердикт"},
    "cmp_col_why": {"en": "Why", "ru": "Почему"},
    "cmp_h_plots": {"en": "Before and after", "ru": "До и после"},
    "cmp_plot_note": {"en": "Latency per call against batch size, one colour per input size; BASE dashed, NEW solid; "
                            "error bars: 95% CI.",
                      "ru": "Задержка вызова в зависимости от batch size, цвет — размер входа; BASE пунктиром, NEW "
                            "сплошной; планки погрешностей: 95% ДИ."},
    "cmp_p_title": {"en": "{runtime} {precision}: latency by batch, BASE and NEW",
                    "ru": "{runtime} {precision}: задержка по batch, BASE и NEW"},
    "cmp_p_label": {"en": "{side} {size} px", "ru": "{side} {size} px"},
    "cmp_v_slower": {"en": "slower", "ru": "медленнее"},
    "cmp_v_faster": {"en": "faster", "ru": "быстрее"},
    "cmp_v_same": {"en": "same", "ru": "без изменений"},
    "cmp_v_inconclusive": {"en": "inconclusive", "ru": "не определено"},
    "cmp_v_now_failed": {"en": "now failed", "ru": "теперь failed"},
    "cmp_v_now_mismatch": {"en": "now mismatch", "ru": "теперь mismatch"},
    "cmp_v_now_oom": {"en": "now oom", "ru": "теперь oom"},
    "cmp_v_now_timeout": {"en": "now timeout", "ru": "теперь timeout"},
    "cmp_v_not_comparable": {"en": "not comparable", "ru": "несравнимо"},
    "cmp_v_only_in_base": {"en": "only in BASE", "ru": "только в BASE"},
    "cmp_v_only_in_new": {"en": "only in NEW", "ru": "только в NEW"},
    "cmp_v_not_compared": {"en": "not compared", "ru": "не сравнивается"},
    "cmp_why_slower": {"en": "95% CI {low:.3f}–{high:.3f} above {up:.3f}; Holm-adjusted p = {p:.2g} over {m} cells",
                       "ru": "95% ДИ {low:.3f}–{high:.3f} выше {up:.3f}; p с поправкой Холма = {p:.2g} по {m} ячейкам"},
    "cmp_why_faster": {"en": "95% CI {low:.3f}–{high:.3f} below {down:.3f}; Holm-adjusted p = {p:.2g} over {m} cells",
                       "ru": "95% ДИ {low:.3f}–{high:.3f} ниже {down:.3f}; p с поправкой Холма = {p:.2g} по {m} ячейкам"},
    "cmp_why_same": {"en": "95% CI {low:.3f}–{high:.3f} inside {down:.3f}–{up:.3f}",
                     "ru": "95% ДИ {low:.3f}–{high:.3f} внутри {down:.3f}–{up:.3f}"},
    "cmp_why_straddles": {"en": "95% CI {low:.3f}–{high:.3f} straddles a threshold ({down:.3f} or {up:.3f}); about "
                                "{more_base} more round(s) in BASE and {more_new} in NEW would decide",
                          "ru": "95% ДИ {low:.3f}–{high:.3f} пересекает порог ({down:.3f} или {up:.3f}); решить "
                                "помогут примерно ещё {more_base} раунд(ов) в BASE и {more_new} в NEW"},
    "cmp_why_straddles_far": {"en": "95% CI {low:.3f}–{high:.3f} straddles a threshold ({down:.3f} or {up:.3f}); "
                                    "deciding would take over 100 times the rounds (the interval is wide for its "
                                    "distance from the threshold)",
                              "ru": "95% ДИ {low:.3f}–{high:.3f} пересекает порог ({down:.3f} или {up:.3f}); для "
                                    "решения понадобилось бы более чем в 100 раз больше раундов (интервал широк для "
                                    "своего расстояния до порога)"},
    "cmp_why_not_after_holm": {"en": "95% CI {low:.3f}–{high:.3f} is beyond the threshold, but not significantly "
                                     "after Holm's correction over {m} cells (adjusted p = {p:.2g}); about {more_base} "
                                     "more round(s) in BASE and {more_new} in NEW would decide",
                               "ru": "95% ДИ {low:.3f}–{high:.3f} за порогом, но незначимо после поправки Холма по {m} "
                                     "ячейкам (p = {p:.2g}); решить помогут примерно ещё {more_base} раунд(ов) в BASE "
                                     "и {more_new} в NEW"},
    "cmp_why_not_after_holm_far": {"en": "95% CI {low:.3f}–{high:.3f} is beyond the threshold, but not significantly "
                                         "after Holm's correction over {m} cells (adjusted p = {p:.2g}); deciding "
                                         "would take over 100 times the rounds",
                                   "ru": "95% ДИ {low:.3f}–{high:.3f} за порогом, но незначимо после поправки Холма по "
                                         "{m} ячейкам (p = {p:.2g}); для решения понадобилось бы более чем в 100 раз "
                                         "больше раундов"},
    "cmp_why_one_round": {"en": "no interval from rounds ({base} round(s) in BASE, {new} in NEW; a schema-1 run keeps "
                                "one): measure it again with rtbench run",
                          "ru": "нет интервала по раундам (раундов в BASE: {base}, в NEW: {new}; запуск схемы 1 хранит "
                                "один): измерьте заново через rtbench run"},
    "cmp_why_statuses": {"en": "{base} in BASE, {new} in NEW: {reason}", "ru": "{base} в BASE, {new} в NEW: {reason}"},
    "cmp_why_now_mismatch": {"en": "outputs now beyond the parity tolerance: {reason}",
                             "ru": "выходы теперь вне допуска сверки: {reason}"},
    "cmp_why_cell_differs": {"en": "{key} differs: {base} in BASE, {new} in NEW (--allow-different {key} accepts it)",
                             "ru": "{key} различается: {base} в BASE, {new} в NEW (--allow-different {key} принимает "
                                   "это)"},
    "cmp_why_only_base": {"en": "in BASE only ({status})", "ru": "только в BASE ({status})"},
    "cmp_why_only_new": {"en": "in NEW only ({status})", "ru": "только в NEW ({status})"},
}


def translator(lang: str) -> Callable[..., str]:
    """``_(key, **fields)`` in ``lang``; an unknown language raises UserError naming the choices."""
    if lang not in LANGS:
        raise UserError(f"unknown report language {lang!r}: use one of {', '.join(LANGS)}")

    def _(key: str, **fields) -> str:
        return MESSAGES[key][lang].format(**fields)

    return _

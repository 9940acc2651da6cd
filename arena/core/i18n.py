"""UI strings in Korean (default) and English. Keys are short English identifiers."""

from __future__ import annotations

LANGS = ("ko", "en")

STRINGS: dict[str, dict[str, str]] = {
    "title": {"ko": "아레나 — 한국어 LLM 평가", "en": "Arena — Korean LLM evaluation"},
    "switch_lang": {"ko": "English", "en": "한국어"},
    "logout": {"ko": "로그아웃", "en": "Log out"},
    "login_name": {"ko": "아이디", "en": "User name"},
    "login_password": {"ko": "비밀번호", "en": "Password"},
    "login_submit": {"ko": "로그인", "en": "Log in"},
    "login_other_lang": {"ko": "English", "en": "한국어"},
    "login_wrong": {"ko": "아이디 또는 비밀번호가 올바르지 않습니다.", "en": "Wrong user name or password."},
    "login_locked": {
        "ko": "로그인 실패가 너무 많습니다. {minutes}분 뒤에 다시 시도하세요.",
        "en": "Too many failed logins. Try again in {minutes} min.",
    },
    "tab_overview": {"ko": "개요", "en": "Overview"},
    "tab_replay": {"ko": "대본 재현 평가", "en": "Replay"},
    "tab_live": {"ko": "실시간 비교", "en": "Live side-by-side"},
    "eval_sets": {"ko": "평가 세트", "en": "Eval sets"},
    "models": {"ko": "모델", "en": "Models"},
    "col_eval_set": {"ko": "평가 세트", "en": "eval set"},
    "col_dialogs": {"ko": "대화 수", "en": "dialogs"},
    "col_turns": {"ko": "정답(GT) 턴 수", "en": "GT turns"},
    "col_categories": {"ko": "분류", "en": "categories"},
    "col_model": {"ko": "모델", "en": "model"},
    "col_kind": {"ko": "종류", "en": "kind"},
    "col_target": {"ko": "위치", "en": "target"},
    "col_status": {"ko": "상태", "en": "status"},
    "healthy": {"ko": "정상", "en": "healthy"},
    "role_user": {"ko": "사용자", "en": "User"},
    "role_assistant": {"ko": "어시스턴트 (정답)", "en": "Assistant (reference)"},
    "role_model": {"ko": "모델", "en": "Model"},
    "role_tool": {"ko": "도구 응답", "en": "Tool result"},
    "role_system": {"ko": "시스템", "en": "System"},
    "tool_call": {"ko": "도구 호출", "en": "Tool call"},
    "tool_result": {"ko": "도구 응답", "en": "Tool result"},
    "empty_answer": {"ko": "(빈 답변)", "en": "(empty answer)"},
    "side_error": {"ko": "이 모델은 답변하지 못했습니다.", "en": "This model failed to answer."},
    "side_error_excluded": {"ko": "이 답변은 평가에서 제외됩니다.", "en": "This side is excluded from rating."},
    "no_gt": {"ko": "정답(GT)이 없는 턴입니다.", "en": "No ground truth for this turn."},
    "gt": {"ko": "정답(GT) 비교", "en": "Ground truth diff"},
    "match": {"ko": "일치", "en": "match"},
    "mismatch": {"ko": "불일치", "en": "mismatch"},
    "similarity": {"ko": "유사도", "en": "similarity"},
    "tool_name": {"ko": "함수 이름", "en": "function name"},
    "tool_args": {"ko": "인자", "en": "arguments"},
    "repeats_earlier": {"ko": "이전 턴 반복", "en": "repeats an earlier turn"},
    "tokens": {"ko": "토큰", "en": "tokens"},
    "eval_set": {"ko": "평가 세트", "en": "Eval set"},
    "dialog": {"ko": "대화", "en": "Dialog"},
    "turn": {"ko": "평가할 턴", "en": "Turn to answer"},
    "turn_label": {"ko": "{n}번 턴", "en": "turn {n}"},
    "open_turn": {"ko": "정답 없음", "en": "no GT"},
    "models_pick": {"ko": "비교할 모델 (2–4개)", "en": "Models to compare (2–4)"},
    "next_unrated": {"ko": "다음 미평가 턴 ▶", "en": "Next unrated turn ▶"},
    "stop": {"ko": "생성 중지 ■", "en": "Stop ■"},
    "regenerate": {"ko": "다시 생성 ↻", "en": "Regenerate ↻"},
    "system_prompt": {"ko": "시스템 / 페르소나 프롬프트", "en": "System / persona prompt"},
    "submit": {"ko": "평가 제출 (Ctrl+Enter)", "en": "Submit ratings (Ctrl+Enter)"},
    "score_label": {"ko": "점수 1–5 (키보드 1–5, 칸 {side})", "en": "Score 1–5 (keys 1–5, side {side})"},
    "criteria": {"ko": "기준 (선택)", "en": "Criteria (optional)"},
    "crit_fluency": {"ko": "유창함", "en": "fluency"},
    "crit_faithful_to_tool": {"ko": "도구 결과에 충실", "en": "faithful to the tool result"},
    "crit_persona_consistent": {"ko": "페르소나 일관성", "en": "persona consistency"},
    "crit_tool_use_correct": {"ko": "도구 사용 정확", "en": "tool use correct"},
    "comment": {"ko": "코멘트 (선택)", "en": "Comment (optional)"},
    "progress": {"ko": "**{set}**: {total}개 중 {done}개 평가함", "en": "**{set}**: rated {done} of {total}"},
    "pick_models": {"ko": "모델을 2개 이상 고르세요.", "en": "Pick at least two models."},
    "model_withheld": {
        "ko": "진행 중인 블라인드 라운드의 모델이라 라운드가 끝날 때까지 쓸 수 없습니다.",
        "en": "This model is in an open blind round you judge; it is unavailable until the round closes.",
    },
    "blind_item_skipped": {
        "ko": "이 항목은 이미 건너뛰었습니다. 다음 항목으로 넘어가세요.",
        "en": "You skipped this item already; go on to the next one.",
    },
    "blind_item_quota": {
        "ko": "이 항목은 필요한 평가 수를 이미 채웠습니다. 다음 항목으로 넘어가세요.",
        "en": "This item already has all the judgements it needs; go on to the next one.",
    },
    "login_required": {"ko": "로그인이 필요합니다.", "en": "Please log in."},
    "nothing_to_rate": {"ko": "평가할 답변이 아직 없습니다.", "en": "There is nothing to rate yet."},
    "score_required": {"ko": "점수를 모두 매겨 주세요: {sides}", "en": "Please score every side: {sides}"},
    "score_invalid": {
        "ko": "점수는 1~5 중 하나여야 합니다 (받은 값: {value})",
        "en": "A score is one of 1-5 (got {value})",
    },
    "criteria_invalid": {
        "ko": "평가 기준이 올바르지 않습니다 (받은 값: {value}; 가능한 값: {known})",
        "en": "Unknown criteria (got {value}; known: {known})",
    },
    "comment_invalid": {"ko": "의견은 글자여야 합니다 (받은 값: {kind})", "en": "A comment is text (got {kind})"},
    "comment_too_long": {
        "ko": "의견이 너무 깁니다: {n}자 (최대 {limit}자)",
        "en": "The comment is too long: {n} characters (at most {limit})",
    },
    "saved": {"ko": "✅ {n}개 답변의 평가를 저장했습니다.", "en": "✅ Saved ratings for {n} answers."},
    "all_rated": {"ko": "🎉 이 평가 세트의 모든 턴을 평가했습니다.", "en": "🎉 Every turn of this eval set is rated."},
    # Not a bare ✓: Gradio's dropdown already puts one beside the selected option.
    "turn_rated_mark": {"ko": "(평가함 ✔)", "en": "(rated ✔)"},
    "submit_edit": {"ko": "평가 수정 (Ctrl+Enter)", "en": "Update rating (Ctrl+Enter)"},
    "editing_note": {
        "ko": "✏️ {when}에 평가한 턴입니다. 그때의 답변과 평가를 보여 줍니다. '평가 수정'은 이 평가를 바꾸며, "
        "이전 평가는 기록에 남습니다.",
        "en": "✏️ You rated this turn on {when}; its answers and your rating are shown. "
        "“Update rating” replaces that rating; the earlier one stays in the history.",
    },
    "saved_turn": {
        "ko": "✅ {dialog} · {turn}: {n}개 답변의 평가를 저장했습니다.",
        "en": "✅ Saved ratings for {n} answers ({dialog} · {turn}).",
    },
    "updated_turn": {
        "ko": "✅ {dialog} · {turn}: {n}개 답변의 평가를 수정했습니다 (이전 평가는 기록에 남음).",
        "en": "✅ Updated ratings for {n} answers ({dialog} · {turn}); the earlier ones are kept in the history.",
    },
    "regenerated_note": {
        "ko": "새 답변입니다. 이 턴의 이전 답변과 평가는 그대로 남습니다.",
        "en": "New answers; this turn's earlier answers and ratings are kept.",
    },
    "rated_models_kept": {
        "ko": "평가한 답변을 그대로 보여 줍니다. 고른 모델로 새 답변을 받으려면 '다시 생성 ↻'을 누르세요.",
        "en": "Your rated answers stay on screen; press “Regenerate ↻” for new answers from the picked models.",
    },
    "stale_submit": {
        "ko": "화면의 턴이 바뀌었습니다. 화면의 답변을 확인하고 다시 제출하세요.",
        "en": "The turn on screen changed; check its answers and submit again.",
    },
    "your_message": {"ko": "메시지", "en": "Your message"},
    "send": {"ko": "보내기", "en": "Send"},
    "clear": {"ko": "새 대화", "en": "New chat"},
    "persona_from": {"ko": "시스템 프롬프트 (선택)", "en": "System prompt (optional)"},
    "empty_message": {"ko": "메시지를 입력하세요.", "en": "Type a message first."},
    "message_too_long": {
        "ko": "메시지가 너무 깁니다 ({n}자, 최대 {max}자).",
        "en": "Message too long ({n} characters, max {max}).",
    },
    "gradio_complete": {"ko": "완료", "en": "Done"},
    "toast_error": {"ko": "확인해 주세요", "en": "Please check"},
    "logged_in_as": {"ko": "로그인: {name}", "en": "Logged in as {name}"},
    # blind A/B rounds (annotators)
    "tab_blind": {"ko": "블라인드 A/B 평가", "en": "Blind A/B"},
    "blind_round": {"ko": "평가 라운드", "en": "Round"},
    "blind_next": {"ko": "다음 항목 ▶", "en": "Next item ▶"},
    "blind_reference": {"ko": "참고: 정답(GT) 답변", "en": "Reference (GT) answer"},
    "blind_score_label": {"ko": "점수 1–5 (키보드 1–5, 칸 {side})", "en": "Score 1–5 (keys 1–5, side {side})"},
    "blind_shortcuts": {
        "ko": "⌨️ 단축키: **1–5** 강조된 칸에 점수 (A 다음 B로 넘어감, 칸을 눌러 바꾸기) · **A** A가 더 낫다 · "
        "**B** B가 더 낫다 · **T** 비슷하다 · **X** 둘 다 나쁘다 · **Ctrl+Enter** 투표 제출",
        "en": "⌨️ Keys: **1–5** score the highlighted side (A, then B; click a side to pick it) · "
        "**A** A is better · **B** B is better · **T** tie · **X** both are bad · "
        "**Ctrl+Enter** submit the vote",
    },
    "blind_vote": {"ko": "어느 답변이 더 낫습니까?", "en": "Which answer is better?"},
    "blind_vote_left": {"ko": "A가 더 낫다", "en": "A is better"},
    "blind_vote_right": {"ko": "B가 더 낫다", "en": "B is better"},
    "blind_vote_tie": {"ko": "비슷하다", "en": "Tie"},
    "blind_vote_both_bad": {"ko": "둘 다 나쁘다", "en": "Both are bad"},
    "blind_submit": {"ko": "투표 제출", "en": "Submit vote"},
    "blind_skip_reason": {"ko": "건너뛰는 이유", "en": "Reason for skipping"},
    "blind_skip": {"ko": "건너뛰기", "en": "Skip"},
    "blind_progress": {
        "ko": "내가 투표한 항목 {voted}개 · 남은 항목 {open}개",
        "en": "You voted on {voted} items · {open} still open to you",
    },
    "blind_no_rounds": {
        "ko": "지금 참여할 수 있는 평가 라운드가 없습니다.",
        "en": "No round is open to you right now.",
    },
    "blind_all_done": {
        "ko": "🎉 이 라운드에서 지금 평가할 항목이 더 없습니다.",
        "en": "🎉 Nothing left for you to judge in this round right now.",
    },
    "blind_dialog_missing": {
        "ko": "대화 {dialog}를 평가 세트에서 찾을 수 없습니다.",
        "en": "Dialog {dialog} is missing from the eval sets.",
    },
    "blind_pick_vote": {"ko": "어느 답변이 나은지 골라 주세요.", "en": "Please choose which answer is better."},
    "blind_saved": {
        "ko": "✅ 투표를 저장했습니다. 모델 이름을 공개합니다.",
        "en": "✅ Vote saved. The models are revealed.",
    },
    "blind_already_voted": {
        "ko": "이미 투표한 항목입니다. 첫 투표가 유지됩니다.",
        "en": "You already voted on this item; your first vote stands.",
    },
    "blind_skip_needs_reason": {"ko": "건너뛰는 이유를 적어 주세요.", "en": "Please give a reason for skipping."},
    "blind_skipped": {"ko": "건너뛰었습니다.", "en": "Skipped."},
    # round management (researchers)
    "tab_rounds": {"ko": "라운드 관리", "en": "Rounds"},
    "rounds_researchers_only": {
        "ko": "연구자 계정만 라운드를 관리할 수 있습니다.",
        "en": "Only researcher accounts can manage rounds.",
    },
    "rounds_pick": {"ko": "라운드", "en": "Round"},
    "rounds_refresh": {"ko": "새로 고침 ↻", "en": "Refresh ↻"},
    "rounds_start": {"ko": "시작 (설정 고정)", "en": "Start (freeze config)"},
    "rounds_pregen": {"ko": "답변 미리 생성", "en": "Pre-generate answers"},
    "rounds_close": {"ko": "종료…", "en": "Close…"},
    "rounds_reopen": {"ko": "재개", "en": "Reopen"},
    "rounds_close_question": {
        "ko": "라운드 **{name}**을(를) 종료할까요? 평가자는 더 이상 투표할 수 없습니다. "
        "투표는 남아 있고, **재개**로 되돌릴 수 있습니다.",
        "en": "Close round **{name}**? Annotators can no longer vote. Votes are kept, and **Reopen** undoes it.",
    },
    "rounds_close_confirm": {"ko": "종료 확인", "en": "Yes, close it"},
    "rounds_close_cancel": {"ko": "취소", "en": "Cancel"},
    "rounds_exported": {"ko": "✅ {n}행 · {file}", "en": "✅ {n} rows · {file}"},
    "round_status_draft": {"ko": "준비 중", "en": "draft"},
    "round_status_running": {"ko": "진행 중", "en": "running"},
    "round_status_closed": {"ko": "종료됨", "en": "closed"},
    "round_reopened": {
        "ko": "✅ 라운드 {name}을(를) 재개했습니다 ({status}). 항목과 투표는 그대로입니다.",
        "en": "✅ Round {name} is open again ({status}); its items and votes are as they were.",
    },
    "round_err_name": {"ko": "라운드 이름을 적어 주세요", "en": "give the round a name"},
    "round_err_eval_sets": {"ko": "평가 세트를 하나 이상 고르세요", "en": "pick at least one eval set"},
    "round_err_models": {"ko": "모델을 2개 이상 고르세요", "en": "pick at least two models"},
    "round_err_annotators": {"ko": "평가자를 한 명 이상 고르세요", "en": "pick at least one annotator"},
    "round_err_pairs": {
        "ko": "턴마다 뽑을 짝 수 {n}이(가) 가능한 짝 {max}개보다 많습니다",
        "en": "pairs per turn {n} is more than the {max} possible pairs",
    },
    "round_err_weights": {
        "ko": "모델 가중치는 '모델=숫자'를 쉼표로 구분해 적어 주세요",
        "en": "write model weights as MODEL=NUMBER, comma-separated",
    },
    "round_err_weight_models": {
        "ko": "가중치를 준 모델이 라운드에 없습니다: {models}",
        "en": "weights for models not in the round: {models}",
    },
    "round_err_weight_positive": {"ko": "가중치는 0보다 커야 합니다", "en": "weights must be positive"},
    # Refusals from the store and the round workflows (StoreError.code), worded for the page.
    "err_no_round": {"ko": "라운드 '{name}'을(를) 찾을 수 없습니다.", "en": "There is no round '{name}'."},
    "err_round_state": {
        "ko": "라운드 '{name}'은(는) 지금 '{status}' 상태라 이 작업을 할 수 없습니다.",
        "en": "Round '{name}' is {status} now, so this cannot be done.",
    },
    "err_not_judge": {
        "ko": "라운드 '{name}'의 평가자가 아닙니다.",
        "en": "You are not an annotator of round '{name}'.",
    },
    "err_bad_vote": {
        "ko": "이 항목에 맞지 않는 투표입니다. 페이지를 새로 고친 뒤 다시 투표해 주세요.",
        "en": "This vote does not fit the item; reload the page and vote again.",
    },
    "err_pregen_not_started": {
        "ko": "라운드 '{name}'에 아직 항목이 없습니다. 먼저 라운드를 시작하세요.",
        "en": "Round '{name}' has no items yet: start it first.",
    },
    "err_pregen_models_missing": {
        "ko": "모델 설정 파일에 없는 라운드 모델: {models}",
        "en": "Models of the round that are not in the models file: {models}",
    },
    "err_unexpected": {
        "ko": "처리하지 못했습니다. 서버가 보낸 내용: {detail}",
        "en": "That did not work. The server said: {detail}",
    },
    "round_err_exists": {
        "ko": "라운드 {name}이(가) 이미 있습니다. 다른 이름을 쓰세요",
        "en": "a round named {name} already exists; pick another name",
    },
    "round_err_reveals": {
        "ko": "라운드 이름 {name}에 모델 이름이 들어 있습니다. 평가자가 이름을 보게 되므로 바꿔 주세요",
        "en": "the round name {name} contains a model name; annotators see it, so change it",
    },
    "round_err_no_turns": {
        "ko": "고른 평가 세트와 필터에 해당하는 턴이 없습니다",
        "en": "the eval sets and filters select no turns",
    },
    "rounds_export_csv": {"ko": "CSV 내보내기", "en": "Export CSV"},
    "rounds_export_jsonl": {"ko": "JSONL 내보내기", "en": "Export JSONL"},
    "rounds_export_file": {"ko": "내보낸 파일", "en": "Exported file"},
    "rounds_new": {"ko": "새 라운드 만들기", "en": "Create a round"},
    "round_name": {"ko": "라운드 이름", "en": "Round name"},
    "round_dialogs": {
        "ko": "대화 ID 패턴 (쉼표로 구분, 비우면 전체)",
        "en": "Dialog-id patterns (comma-separated; empty = all)",
    },
    "round_categories": {"ko": "분류 (쉼표로 구분, 비우면 전체)", "en": "Categories (comma-separated; empty = all)"},
    "round_models": {"ko": "모델 (2개 이상)", "en": "Models (two or more)"},
    "round_pairing": {"ko": "짝 구성", "en": "Pairing"},
    "round_pairing_all": {"ko": "모든 짝", "en": "All pairs"},
    "round_pairing_sampled": {"ko": "가중치 표본", "en": "Weighted sample"},
    "round_pairs_per_turn": {"ko": "턴마다 뽑을 짝 수 (표본일 때)", "en": "Pairs per turn (sampled)"},
    "round_weights": {
        "ko": "모델 가중치 (모델=숫자, 쉼표로 구분)",
        "en": "Model weights (MODEL=NUMBER, comma-separated)",
    },
    "round_judgements": {"ko": "항목당 독립 평가 수", "en": "Independent judgements per item"},
    "round_annotators": {"ko": "평가자", "en": "Annotators"},
    "round_seed": {"ko": "난수 시드", "en": "Random seed"},
    "round_max_tokens": {"ko": "최대 생성 토큰 (0 = 모델 기본값)", "en": "Max tokens (0 = model default)"},
    "round_create": {"ko": "라운드 만들기", "en": "Create round"},
    "round_created": {
        "ko": "✅ 라운드 {name}을(를) 만들었습니다 (항목 {items}개). 시작하면 설정이 고정됩니다.",
        "en": "✅ Created round {name} ({items} items). Starting it freezes the config.",
    },
    "round_started": {
        "ko": "✅ 라운드 {name} 시작: 항목 {items}개.",
        "en": "✅ Round {name} started with {items} items.",
    },
    "round_closed": {"ko": "라운드 {name}을(를) 종료했습니다.", "en": "Round {name} is closed."},
    "round_pregen_done": {
        "ko": "✅ 미리 생성: 필요한 답변 {total}개 · 이미 저장됨 {skipped}개 · 새로 생성 {generated}개 · "
        "실패 {failed}개",
        "en": "✅ Pre-generation: {total} answers needed: {skipped} already stored, {generated} generated,"
        " {failed} failed",
    },
    "round_pregen_progress": {"ko": "답변 미리 생성", "en": "Pre-generating answers"},
    "round_pregen_unit": {"ko": "개 답변", "en": "answers"},
    "round_summary": {
        "ko": "**{name}** ({status}) · 완료 항목 {done} / {total} · 평가 가능 {ready} · 실패 답변 포함 {failed} · "
        "답변 {stored} / {needed} 저장 · 투표 {votes} · 건너뜀 {skips}",
        "en": "**{name}** ({status}) · items done {done} / {total} · ready {ready} · with a failed answer {failed} · "
        "answers {stored} / {needed} stored · votes {votes} · skips {skips}",
    },
    "round_sampling": {"ko": "항목 고르는 방식", "en": "Sampling"},
    "round_sampling_info": {
        "ko": "능동: 순위가 아직 갈리지 않은 모델 짝에 투표를 먼저 씁니다",
        "en": "Active: votes go first to the model pairs whose order is still open",
    },
    "round_sampling_uniform": {"ko": "균등", "en": "uniform"},
    "round_sampling_active": {"ko": "능동", "en": "active"},
    "round_stop_none": {
        "ko": "**멈춤 규칙** ({sampling} 샘플링): 아직 투표가 없습니다.",
        "en": "**Stopping rule** ({sampling} sampling): no votes yet.",
    },
    "round_stop_all": {
        "ko": "**멈춤 규칙** ({sampling} 샘플링): 모델 {n}개의 순서가 모두 정해졌습니다 (이웃한 모든 짝의 95% "
        "신뢰구간이 겹치지 않음). 라운드를 종료해도 됩니다.",
        "en": "**Stopping rule** ({sampling} sampling): the whole order of the {n} models is settled (every "
        "adjacent pair's 95% intervals separate). The round can be closed.",
    },
    "round_stop_top": {
        "ko": "**멈춤 규칙** ({sampling} 샘플링): 상위 {k}위까지 순서가 정해졌습니다. 나머지 짝은 아래 표를 "
        "보세요 (부트스트랩 {n_boot}회).",
        "en": "**Stopping rule** ({sampling} sampling): the top-{k} order is settled. For the other pairs see "
        "the table ({n_boot} bootstrap resamples).",
    },
    "round_stop_open": {
        "ko": "**멈춤 규칙** ({sampling} 샘플링): 아직 정해진 순위가 없습니다. 1위와 2위의 신뢰구간이 겹칩니다 "
        "(부트스트랩 {n_boot}회).",
        "en": "**Stopping rule** ({sampling} sampling): no place is settled yet; the intervals of the first two "
        "overlap ({n_boot} bootstrap resamples).",
    },
    "round_sep_done": {"ko": "분리됨", "en": "separated"},
    "round_sep_unknown": {"ko": "추정 불가 (점수 차 없음)", "en": "cannot estimate (no gap)"},
    "round_sep_more": {"ko": "약 {n}표 더", "en": "about {n} more votes"},
    "yes": {"ko": "예", "en": "yes"},
    "no": {"ko": "아니오", "en": "no"},
    "col_upper": {"ko": "위 모델", "en": "upper model"},
    "col_lower": {"ko": "아래 모델", "en": "lower model"},
    "col_gap": {"ko": "점수 차", "en": "gap"},
    "col_separated": {"ko": "95% 구간 분리", "en": "95% intervals separate"},
    "col_votes_needed": {"ko": "필요한 투표 (현재 속도로 추정)", "en": "votes still needed (at the current rate)"},
    "col_annotator": {"ko": "평가자", "en": "annotator"},
    "col_votes": {"ko": "투표", "en": "votes"},
    "col_skips": {"ko": "건너뜀", "en": "skips"},
    "col_model_a": {"ko": "모델 A", "en": "model A"},
    "col_model_b": {"ko": "모델 B", "en": "model B"},
    "col_items": {"ko": "항목", "en": "items"},
    # adapters tab (researchers): LoRA adapters loaded at run time
    "tab_adapters": {"ko": "어댑터", "en": "Adapters"},
    "adapters_intro": {
        "ko": "학습한 LoRA 어댑터를 재시작 없이 아레나 모델 `<기반>:<어댑터>`로 불러옵니다. "
        "불러온 뒤 페이지를 새로 고치면 재현·실시간 탭의 모델 목록에 나타납니다.",
        "en": "Load a trained LoRA adapter into the arena as model `<base>:<adapter>`, without a restart. "
        "Reload the page afterwards to pick it in the Replay and Live tabs.",
    },
    "adapters_dir": {"ko": "어댑터 폴더", "en": "Adapters folder"},
    "adapters_refresh": {"ko": "새로 고침 ↻", "en": "Refresh ↻"},
    "adapters_pick": {"ko": "어댑터", "en": "Adapter"},
    "adapters_base": {"ko": "기반 모델", "en": "Base model"},
    "adapters_load": {"ko": "아레나에 불러오기", "en": "Load into arena"},
    "adapters_choose": {"ko": "어댑터와 기반 모델을 고르세요.", "en": "Choose an adapter and a base model."},
    "adapters_loaded": {
        "ko": "✅ {model} 모델을 불러왔습니다. 페이지를 새로 고치면 모델 목록에 나타납니다.",
        "en": "✅ Loaded {model}. Reload the page to see it in the model pickers.",
    },
    "adapters_none": {
        "ko": "{dir}에 어댑터가 없습니다 (`arena train`으로 만드세요).",
        "en": "No adapters in {dir} (make one with `arena train`).",
    },
    "researcher_only": {"ko": "연구자 계정만 사용할 수 있습니다.", "en": "Researcher accounts only."},
    "adapters_status_ready": {"ko": "사용 가능", "en": "ready"},
    "adapters_status_unfinished": {
        "ko": "학습 미완료 (--resume으로 이어서 학습)",
        "en": "unfinished (resume with --resume)",
    },
    "adapters_err_mismatch": {
        "ko": "어댑터 {adapter}은(는) 기반 모델 {base}에 맞지 않습니다: 다른 구조의 모델로 학습된 "
        "어댑터입니다. 학습에 쓴 기반 모델을 고르세요.",
        "en": "Adapter {adapter} does not fit base model {base}: it was trained on a model of "
        "another architecture. Pick the base it was trained on.",
    },
    "adapters_err_exists": {
        "ko": "{base}:{adapter} 모델이 이미 아레나에 있습니다.",
        "en": "Model {base}:{adapter} is already in the arena.",
    },
    "adapters_err_failed": {
        "ko": "어댑터 {adapter}을(를) {base}에 불러오지 못했습니다.",
        "en": "Could not load adapter {adapter} over {base}.",
    },
    "adapters_err_details": {"ko": "기술 정보", "en": "Technical details"},
    "adapters_col_name": {"ko": "어댑터", "en": "adapter"},
    "adapters_col_status": {"ko": "상태", "en": "status"},
    "adapters_col_base": {"ko": "기반 모델", "en": "base model"},
    "adapters_col_template": {"ko": "템플릿", "en": "template"},
    "adapters_col_steps": {"ko": "스텝", "en": "steps"},
    "adapters_col_train_loss": {"ko": "학습 손실", "en": "train loss"},
    "adapters_col_eval_loss": {"ko": "검증 손실", "en": "eval loss"},
    "adapters_col_created": {"ko": "생성 시각", "en": "created"},
    "adapters_col_data": {"ko": "데이터", "en": "data"},
    "adapters_col_in_arena": {"ko": "아레나 모델", "en": "in arena as"},
    # leaderboard tab
    "tab_leaderboard": {"ko": "리더보드", "en": "Leaderboard"},
    "lb_all": {"ko": "(전체)", "en": "(all)"},
    "lb_round": {"ko": "라운드", "en": "Round"},
    "lb_eval_set": {"ko": "평가 세트", "en": "Eval set"},
    "lb_category": {"ko": "분류", "en": "Category"},
    "lb_refresh": {"ko": "새로 계산 ↻", "en": "Recompute ↻"},
    "lb_settings": {"ko": "계산 설정", "en": "Settings"},
    "lb_both_bad": {"ko": "'둘 다 나쁨' 투표", "en": "'Both bad' votes"},
    "lb_both_bad_tie": {"ko": "무승부로 셈", "en": "count as a tie"},
    "lb_both_bad_drop": {"ko": "제외", "en": "leave out"},
    "lb_anchor": {"ko": "기준 모델 (1000점)", "en": "Anchor model (= 1000)"},
    "lb_anchor_mean": {"ko": "(평균 = 1000)", "en": "(mean = 1000)"},
    "lb_boot": {"ko": "부트스트랩 횟수", "en": "Bootstrap resamples"},
    "lb_seed": {"ko": "시드", "en": "Seed"},
    "lb_summary": {
        "ko": "평가 {ratings}건 · 투표 {votes}건 · 답변 {generations}개 (실패 {failed}개 제외) · "
        "95% 신뢰구간: 부트스트랩 {n_boot}회, 시드 {seed}",
        "en": "{ratings} ratings · {votes} votes · {generations} answers ({failed} failed, left out) · "
        "95% CIs: {n_boot} bootstrap resamples, seed {seed}",
    },
    "lb_error": {"ko": "계산할 수 없습니다: {error}", "en": "Cannot compute: {error}"},
    "lb_pairwise": {"ko": "블라인드 투표 순위 (Bradley–Terry)", "en": "Blind-vote ranking (Bradley–Terry)"},
    "lb_pairwise_note": {
        "ko": "순위는 신뢰구간이 겹치지 않을 때만 갈립니다. 온라인 Elo는 투표 순서에 따라 달라지므로 "
        "비교용으로만 보여 줍니다.",
        "en": "Ranks separate only non-overlapping intervals. Online Elo depends on the order of "
        "the votes and is shown for comparison only.",
    },
    "lb_scores": {"ko": "1–5 점수 평균", "en": "Mean 1–5 score"},
    "lb_scores_by": {"ko": "평가 세트 · 분류 · 라운드별 점수", "en": "Scores by eval set, category and round"},
    "lb_matrices": {"ko": "승률과 대결 수", "en": "Win rates and battle counts"},
    "lb_diagnostics": {
        "ko": "진단: 위치 편향 · 평가자 · 평가자 간 일치도",
        "en": "Diagnostics: position bias, annotators, agreement",
    },
    "lb_position_bias": {
        "ko": "왼쪽 답변이 이긴 비율 (0.5 = 편향 없음)",
        "en": "Share of decisive votes won by the left answer (0.5 = no bias)",
    },
    "lb_annotators": {"ko": "평가자별 건수", "en": "Per annotator"},
    "lb_matrix_tables": {"ko": "승률 · 대결 수 표", "en": "Win-rate and battle-count tables"},
    "lb_agreement": {
        "ko": "평가자 간 일치도 (Krippendorff α; 2명 이상이 평가한 항목)",
        "en": "Inter-annotator agreement (Krippendorff's α; items judged at least twice)",
    },
    "lb_style": {
        "ko": "스타일 보정 순위 (길이 · 마크다운을 뺀 Bradley–Terry)",
        "en": "Style-controlled ranking (Bradley–Terry with length and markdown held equal)",
    },
    "lb_style_note": {
        "ko": "같은 투표로 모델 실력과 함께 답변 길이(공백 제외 글자 수), 제목, 목록 항목, 굵은 글씨의 영향을 "
        "추정합니다 (FastChat의 style control). 보정 점수가 원 점수보다 많이 낮은 모델은 길거나 꾸민 답변으로 "
        "표를 얻은 것입니다.",
        "en": "The same votes fit model strength together with the effect of answer length (characters without "
        "whitespace), headers, list items and bold text (FastChat's style control). A model whose controlled "
        "rating is well below its raw one won votes by writing longer or more formatted answers.",
    },
    "lb_style_coefficients": {"ko": "스타일 계수와 그 의미", "en": "Style coefficients and what they mean"},
    "lb_style_none": {
        "ko": "스타일 보정에 쓸 투표가 없습니다.",
        "en": "No votes to fit style control on.",
    },
    "lb_style_constant": {
        "ko": "모든 대결에서 같은 값이라 추정할 수 없는 특성: {features}",
        "en": "Not estimable (the same in every battle): {features}",
    },
    "style_meaning": {
        "ko": "{what} 실력이 같은 모델끼리 {share}의 비율로 이깁니다 {ci} (50% = 영향 없음).",
        "en": "{what} wins {share} {ci} of votes between equally rated models (50% = no effect).",
    },
    "style_what_length": {
        "ko": "두 배 긴 답변({a} 대 {b}{unit})은",
        "en": "A twice as long answer ({a} vs {b} {unit})",
    },
    "style_unit_chars": {"ko": "자, 공백 제외", "en": "characters without whitespace"},
    "style_unit_tokens": {"ko": "토큰", "en": "tokens"},
    "style_what_headers": {
        "ko": "제목이 {a}개 있는 답변은 제목 없는 답변을 상대로",
        "en": "An answer with {a} headers against one without",
    },
    "style_what_lists": {
        "ko": "목록 항목이 {a}개 있는 답변은 목록 없는 답변을 상대로",
        "en": "An answer with {a} list items against one without",
    },
    "style_what_bold": {
        "ko": "굵은 글씨가 {a}곳 있는 답변은 굵은 글씨 없는 답변을 상대로",
        "en": "An answer with {a} bold spans against one without",
    },
    "style_feature_length": {"ko": "길이", "en": "length"},
    "style_feature_headers": {"ko": "제목", "en": "headers"},
    "style_feature_lists": {"ko": "목록 항목", "en": "list items"},
    "style_feature_bold": {"ko": "굵은 글씨", "en": "bold"},
    "lb_metrics": {"ko": "자동 지표 (저장된 답변)", "en": "Automatic metrics (stored answers)"},
    "lb_metric_pick": {"ko": "그래프로 볼 지표", "en": "Metric to plot"},
    "lb_recall": {"ko": "검색 재현율 (패션 검색 세트, BM25)", "en": "Retrieval recall (fashion set, BM25)"},
    "lb_recall_models": {"ko": "검색어를 만들 모델 (선택)", "en": "Models that write the search query (optional)"},
    "lb_recall_run": {"ko": "재현율 계산", "en": "Compute recall"},
    "lb_recall_done": {"ko": "검색 항목 {n}개 · 문서 {docs}개", "en": "{n} retrieval items · {docs} documents"},
    "lb_recall_missing": {"ko": "검색 세트 파일이 없습니다: {path}", "en": "Retrieval set not found: {path}"},
    # plots (arena/leaderboards/plots.py, arena/retrieval/plots.py)
    "plot_no_data": {"ko": "데이터 없음", "en": "no data"},
    "plot_bt_title": {"ko": "Bradley–Terry 점수 (95% 신뢰구간)", "en": "Bradley–Terry rating (95% CI)"},
    "plot_scores_title": {"ko": "1–5 점수 평균 (95% 신뢰구간)", "en": "Mean 1–5 score (95% CI)"},
    "plot_ci_title": {"ko": "{what} (95% 신뢰구간)", "en": "{what} (95% CI)"},
    "plot_online_elo": {"ko": "온라인 Elo (투표 순서에 좌우됨)", "en": "Online Elo (order-dependent)"},
    "plot_opponent": {"ko": "상대 모델", "en": "opponent"},
    "plot_win_rate_title": {"ko": "행 모델이 열 모델을 이긴 비율", "en": "Win rate of row model against column model"},
    "plot_battles_title": {"ko": "모델 짝별 대결 수", "en": "Battles per model pair"},
    "plot_recall_title": {
        "ko": "검색 재현율: 상위 k개 안에 정답 문서가 있는 비율",
        "en": "Retrieval recall: any gold document in the top k",
    },
    "plot_recall_y": {"ko": "R@k (상위 k 적중)", "en": "R@k (hit@k)"},
    "plot_recall_legend": {"ko": "{name} (검색어 없음 {rate})", "en": "{name} (no query {rate})"},
    "recall_baseline": {"ko": "마지막 발화", "en": "last utterance"},
    "recall_reference": {"ko": "정답 검색어", "en": "reference query"},
}

# Column headers of the leaderboard and recall tables, by machine name (CSV/JSON keep the machine names).
COLUMNS: dict[str, dict[str, str]] = {
    "model": {"ko": "모델", "en": "model"},
    "rating": {"ko": "BT 점수", "en": "rating"},
    "95% CI": {"ko": "95% 신뢰구간", "en": "95% CI"},
    "rank": {"ko": "순위", "en": "rank"},
    "n_battles": {"ko": "대결 수", "en": "battles"},
    "wins": {"ko": "승", "en": "wins"},
    "ties": {"ko": "무승부", "en": "ties"},
    "losses": {"ko": "패", "en": "losses"},
    "win_rate": {"ko": "승률", "en": "win rate"},
    "online_elo": {"ko": "온라인 Elo", "en": "online Elo"},
    "mean": {"ko": "평균 점수", "en": "mean"},
    "value": {"ko": "값", "en": "value"},
    "n": {"ko": "건수", "en": "n"},
    "n_dialogs": {"ko": "대화 수", "en": "dialogs"},
    "n_annotators": {"ko": "평가자 수", "en": "annotators"},
    "eval_set": {"ko": "평가 세트", "en": "eval set"},
    "category": {"ko": "분류", "en": "category"},
    "round": {"ko": "라운드", "en": "round"},
    "n_votes": {"ko": "투표 수", "en": "votes"},
    "n_decisive": {"ko": "승부가 난 투표", "en": "decisive votes"},
    "left_wins": {"ko": "왼쪽 승", "en": "left wins"},
    "left_share": {"ko": "왼쪽 승 비율", "en": "left share"},
    "annotator": {"ko": "평가자", "en": "annotator"},
    "decisive": {"ko": "승부 남", "en": "decisive"},
    "both_bad": {"ko": "둘 다 나쁨", "en": "both bad"},
    "n_ratings": {"ko": "점수 수", "en": "ratings"},
    "mean_score": {"ko": "평균 점수", "en": "mean score"},
    "judgements": {"ko": "판정 종류", "en": "judgements"},
    "metric": {"ko": "지표", "en": "metric"},
    "alpha": {"ko": "α", "en": "α"},
    "n_units": {"ko": "항목 수", "en": "items"},
    "n_judgements": {"ko": "판정 수", "en": "judgements made"},
    "answers": {"ko": "답변 수", "en": "answers"},
    "similarity": {"ko": "정답 유사도", "en": "similarity"},
    "tool_name_match": {"ko": "함수 이름 일치", "en": "tool name match"},
    "tool_args_match": {"ko": "인자 일치", "en": "tool args match"},
    "repetition": {"ko": "반복도", "en": "repetition"},
    "repeats_earlier_turn": {"ko": "이전 턴 반복", "en": "repeats an earlier turn"},
    "answer_chars": {"ko": "답변 글자 수", "en": "answer characters"},
    "tokens": {"ko": "토큰 수", "en": "tokens"},
    "ttft_ms": {"ko": "첫 토큰까지 (ms)", "en": "time to first token (ms)"},
    "total_ms": {"ko": "전체 시간 (ms)", "en": "total time (ms)"},
    "ms_per_token": {"ko": "토큰당 시간 (ms)", "en": "ms per token"},
    "tokens_per_s": {"ko": "초당 토큰", "en": "tokens per second"},
    "system": {"ko": "검색어 출처", "en": "system"},
    "no query": {"ko": "검색어 없음", "en": "no query"},
    "k": {"ko": "k", "en": "k"},
    "style_rating": {"ko": "스타일 보정 점수", "en": "style-controlled rating"},
    "style_95% CI": {"ko": "보정 95% 신뢰구간", "en": "style-controlled 95% CI"},
    "style_rank": {"ko": "보정 순위", "en": "style-controlled rank"},
    "change": {"ko": "변화", "en": "change"},
    "feature": {"ko": "특성", "en": "feature"},
    "coef": {"ko": "계수 (표준편차당 로그 오즈)", "en": "coefficient (log-odds per SD)"},
    "example_a": {"ko": "예시 A", "en": "example A"},
    "example_b": {"ko": "예시 B", "en": "example B"},
    "example_win_share": {"ko": "예시 A 승률", "en": "example A win share"},
    "example_95% CI": {"ko": "승률 95% 신뢰구간", "en": "win share 95% CI"},
    "meaning": {"ko": "의미", "en": "meaning"},
}


def column_label(lang: str, name: str) -> str:
    """A table column's or metric's header in ``lang``; names without one (model names, R@k) as they are."""
    entry = COLUMNS.get(name)
    return (entry.get(lang) or entry["ko"]) if entry else name


def t(lang: str, key: str, **fmt: object) -> str:
    """The UI string ``key`` in ``lang`` (falls back to Korean, then to the key itself)."""
    entry = STRINGS.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry["ko"]
    return text.format(**fmt) if fmt else text

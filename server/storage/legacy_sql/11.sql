CREATE INDEX exception_reviews_by_inspection ON exception_reviews(inspection_id);
CREATE INDEX exception_reviews_by_officer ON exception_reviews(officer_id, status);
